"""Draw the corruption gallery: one row per corruption, the clean cell then severities 1-5.

Usage (from the repository root):
    python benchmarks/probes/make_corruption_gallery.py [--out docs/images/corruption_gallery.png] \\
        [--cell eosinophil/EO_116336.jpg] [--seed 0]

The cell is one image of the bundled sample (``cellkit.load("sample")``), named by its id.
Rows are grouped as in ``cellkit.corrupt.suite.FAMILIES``, training-time augmentation
families first, held-out evaluation families after, each row labelled with the severity
parameter from ``SEVERITY_PARAMETERS``. The PNG is written atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

import cellkit
from cellkit._io import atomic_path
from cellkit.corrupt.suite import (
    AUGMENTATION_FAMILIES,
    EVALUATION_FAMILIES,
    SEVERITIES,
    SEVERITY_PARAMETERS,
    corrupt,
)

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "docs" / "images" / "corruption_gallery.png"
DEFAULT_CELL = "eosinophil/EO_116336.jpg"


def _fmt(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def draw_gallery(cell: np.ndarray, seed: int = 0, tile_inches: float = 0.98) -> Figure:
    """The gallery figure for one ``uint8`` cell ``(h, w, 3)``."""
    rows = [*AUGMENTATION_FAMILIES, *EVALUATION_FAMILIES]
    ncols = 1 + len(SEVERITIES)
    label_w = 1.5
    fig = Figure(figsize=(label_w + tile_inches * ncols, tile_inches * (len(rows) + 0.4)), dpi=100)
    FigureCanvasAgg(fig)
    top = 1 - 0.4 / (len(rows) + 0.4)
    grid = fig.add_gridspec(
        len(rows), ncols, left=label_w / (label_w + tile_inches * ncols), right=0.995, top=top, bottom=0.003,
        wspace=0.04, hspace=0.04,
    )
    batch = cell[None]
    for r, name in enumerate(rows):
        param, values = SEVERITY_PARAMETERS[name]
        held_out = name in EVALUATION_FAMILIES
        for c in range(ncols):
            ax = fig.add_subplot(grid[r, c])
            img = cell if c == 0 else corrupt(batch, name, severity=c, seed=seed)[0]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("clean" if c == 0 else f"severity {c}", fontsize=9)
            if c == 0:
                tag = "held out" if held_out else "augmented"
                ax.set_ylabel(f"{name}\n[{tag}]", rotation=0, ha="right", va="center", fontsize=8.5,
                              color="#8b0000" if held_out else "black")
            elif param != "(none)":
                ax.text(0.03, 0.03, f"{_fmt(values[c - 1])}", transform=ax.transAxes, fontsize=7, color="white",
                        bbox={"facecolor": "black", "alpha": 0.55, "pad": 1, "linewidth": 0})
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="PNG to write")
    parser.add_argument("--cell", default=DEFAULT_CELL, help="id of the sample image to corrupt")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sample = cellkit.load("sample")
    if args.cell not in sample.ids:
        print(f"error: no image {args.cell!r} in the sample (ids look like {sample.ids[0]!r})", file=sys.stderr)
        return 2
    cell = sample.images[sample.ids.index(args.cell)]
    fig = draw_gallery(cell, seed=args.seed)
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]  # opaque figure: drop alpha, a quarter of the bytes
    with atomic_path(args.out, suffix=".png") as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG", optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
