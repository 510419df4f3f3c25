"""Superposition detection on pictures nobody at cellkit drew, composited and saved by Pillow.

Every other superposition figure of cellkit uses overlays from cellkit's own generators
(even the held-out-family protocol only holds out one of *our* families). This bench uses
third-party pictures only, fetched by ``benchmarks/fetch_external_overlays.sh`` and used
for evaluation only (nothing in cellkit trains or is tuned on them):

* ``twemoji``: Twitter's emoji (3,786 pictures, flat colour, bold outlines);
* ``noto``: Google's Noto emoji (3,786, shaded cartoon style);
* ``fontawesome``: the 675 icons of Font Awesome 4.7 (logos, UI glyphs), drawn from its font.

Composition and storage never touch cellkit's code: each overlay is a 96x96 Pillow picture,
a plain colour or a linear gradient with one to three emoji (or one or two icons) pasted at
20-100% of the picture's size (the flat cartoons of issue 16's independent bench), blended
on a real pbc96 cell with ``PIL.Image.blend`` at alpha 0.25-0.6; 10% of the images are
superposed, half of those in groups of 25 sharing one overlay (a meme reused across a
dataset). Every image, clean or not, is then written by Pillow as PNG, JPEG (q90, q50) or WebP (q80)
into a class-folder tree and read back with ``cellkit.load`` as a user's folder would be.
The detector is cellkit's default (``SuperpositionDetector(random_state=0)``, every one of
its own families in training), fitted on that folder without labels; scored at its default
threshold. Second table: the same folders with the detector's three families nearest to
these pictures (cartoon, faces, drawn, designed after issue 16 described the cartoons it
missed) removed from its training, to tell a detector that generalises from one that was
taught the answer. The gap between these rows and the held-out table of ``quality.md``
(our own families held out) is the finding.

A second test (``-k blends``) mixes the Twemoji overlays in through Pillow's layer modes
(multiply, screen, overlay, hard light, soft light, difference) and at alphas outside 0.25-0.6,
for the default detector and one trained with cellkit's own modes (``blend_modes=``); it
writes ``quality_external_blends.md``.

Quick mode: the bundled sample, Twemoji only, JPEG q90 (loose bounds); multiply for the blends. ``--full``:
``FULL_N`` random pbc96 images (the held-out table's draw), every corpus and storage; writes
``docs/results/quality_external.md`` and ``quality_external.json``. Skips without the pictures.
::

    bash benchmarks/fetch_external_overlays.sh                    # once (npm registry)
    python -m pytest benchmarks/test_bench_external_overlays.py --full
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

import cellkit
from cellkit._io import atomic_write_text
from cellkit.corrupt.overlays import OVERLAY_FAMILIES
from cellkit.quality.color import ColorFilterDetector
from cellkit.quality.held_out import Bench, HeldOutReport, score_bench
from cellkit.quality.superposition import SuperpositionDetector

PIL = pytest.importorskip("PIL", reason="Pillow composes the external bench")
from PIL import Image, ImageChops, ImageDraw, ImageFont  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OVERLAYS = Path(os.environ.get("CELLKIT_EXTERNAL_OVERLAYS", REPO / ".cache" / "external-overlays"))
CORPORA = ("twemoji", "noto", "fontawesome")
STORAGES = ("png", "jpeg90", "jpeg50", "webp80")
FULL_N = 4000
SEED = 0
FRACTION, ALPHA, REUSED_SHARE, REUSED_GROUP = 0.1, (0.25, 0.6), 0.5, 25
#: What --full asserts on every row (AUROC, recall, precision): a guard just under the figures
#: measured on 2026-12-08 (0.991, 0.84, 0.92), not the issue's targets (printed beside them).
FULL_BOUNDS = (0.985, 0.80, 0.90)
TARGETS = "every family AUROC >= 0.995, recall >= 0.95 at precision >= 0.95"
#: cellkit's own overlay families nearest to these pictures (flat cartoons, faces, drawings)
NEAREST = ("cartoon", "faces", "drawn")
#: The detector's synthetic families: all of them (the default), and all but the nearest.
TRAINING = {"all": OVERLAY_FAMILIES, "without nearest": tuple(f for f in OVERLAY_FAMILIES if f not in NEAREST)}


@pytest.fixture(scope="module")
def overlays_dir() -> Path:
    if not (OVERLAYS / "twemoji").is_dir():
        pytest.skip(f"needs the third-party pictures at {OVERLAYS}: run `bash benchmarks/fetch_external_overlays.sh`")
    return OVERLAYS


def bench_cells(pbc96: Path, n: int = FULL_N) -> cellkit.data.Dataset:
    """``n`` random pbc96 images (seed ``SEED``: the held-out table's draw)."""
    ds = cellkit.load(pbc96)
    return ds.subset(np.sort(np.random.default_rng(SEED).choice(len(ds), n, replace=False)))


class Corpus:
    """Draws 96x96 overlay pictures from one third-party corpus with Pillow (module docstring)."""

    def __init__(self, name: str, root: Path, size: int) -> None:
        self.name, self.size = name, size
        if name == "fontawesome":
            css = (root / "fontawesome" / "font-awesome.css").read_text()
            self.glyphs = sorted({chr(int(c, 16)) for c in re.findall(r'content:\s*"\\(f[0-9a-f]{3})"', css)})
            self.font = str(root / "fontawesome" / "fontawesome-webfont.ttf")
        else:
            self.files = sorted((root / name).glob("*.png"))
        if not (getattr(self, "glyphs", None) or getattr(self, "files", None)):
            raise FileNotFoundError(f"no pictures of {name} under {root}: rerun benchmarks/fetch_external_overlays.sh")

    def _background(self, rng: np.random.Generator) -> Image.Image:
        s = self.size
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        if rng.random() < 0.5:
            return Image.new("RGB", (s, s), tuple(int(v) for v in a))
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:s, 0:s] / (s - 1)
        t = (np.cos(angle) * xx + np.sin(angle) * yy)
        t = (t - t.min()) / max(np.ptp(t), 1e-9)
        return Image.fromarray((a + (b - a) * t[..., None]).round().astype(np.uint8), "RGB")

    def draw(self, rng: np.random.Generator) -> Image.Image:
        canvas = self._background(rng)
        s = self.size
        if self.name == "fontawesome":
            draw = ImageDraw.Draw(canvas)
            for _ in range(rng.integers(1, 3)):
                px = int(rng.uniform(0.3, 1.0) * s)
                font = ImageFont.truetype(self.font, px)
                colour = tuple(int(v) for v in rng.integers(0, 256, 3))
                xy = (int(rng.integers(-px // 4, s - px // 2)), int(rng.integers(-px // 4, s - px // 2)))
                draw.text(xy, self.glyphs[rng.integers(len(self.glyphs))], font=font, fill=colour)
            return canvas
        for _ in range(rng.integers(1, 4)):
            px = int(rng.uniform(0.2, 1.0) * s)
            with Image.open(self.files[rng.integers(len(self.files))]) as im:
                emoji = im.convert("RGBA").resize((px, px), Image.LANCZOS)
            xy = (int(rng.integers(-px // 4, s - px // 2)), int(rng.integers(-px // 4, s - px // 2)))
            canvas.paste(emoji, xy, emoji)
        return canvas


#: Layer modes of an image editor (Pillow's ``ImageChops``), each mixed in at alpha: what a
#: person making a meme may pick instead of plain transparency; the default detector trains on
#: none of them.
BLENDS = {
    "multiply": ImageChops.multiply,
    "screen": ImageChops.screen,
    "overlay": ImageChops.overlay,
    "hard light": ImageChops.hard_light,
    "soft light": ImageChops.soft_light,
    "difference": ImageChops.difference,
}
#: The editor modes of cellkit's own (``SuperpositionDetector(blend_modes=...)``): the second
#: detector of the blends table trains on them; Pillow's overlay, hard light, soft light and
#: difference stay held out.
OWN_MODES = ("multiply", "screen", "darken", "lighten")


def make_external_bench(cells: np.ndarray, corpus: Corpus, rng: np.random.Generator, *, blend: str = "alpha",
                        alpha: tuple[float, float] = ALPHA) -> tuple[list[Image.Image], Bench]:
    """Pillow pictures of ``cells`` with ``FRACTION`` of them blended with overlays of ``corpus``.

    ``blend="alpha"``: ``Image.blend(cell, overlay, a)``; a mode of :data:`BLENDS`:
    ``Image.blend(cell, mode(cell, overlay), a)``; ``a`` uniform in ``alpha``.
    """
    n = len(cells)
    k = int(round(FRACTION * n))
    which = rng.choice(n, size=k, replace=False)
    n_reused = int(round(REUSED_SHARE * k))
    alphas = rng.uniform(*alpha, size=k)
    pictures = [Image.fromarray(c, "RGB") for c in cells]
    overlay = None
    for j, (i, a) in enumerate(zip(which, alphas, strict=True)):
        if j >= n_reused or j % REUSED_GROUP == 0:
            overlay = corpus.draw(rng)
        top = overlay if blend == "alpha" else BLENDS[blend](pictures[i], overlay)
        pictures[i] = Image.blend(pictures[i], top, float(a))
    return pictures, Bench.of(cells, which, n_reused, alphas)


def save_and_load(pictures: list[Image.Image], labels: np.ndarray, class_names: list[str], storage: str,
                  folder: Path) -> np.ndarray:
    """Write every picture with Pillow as ``storage`` into a class-folder tree; ``cellkit.load`` it back."""
    if storage == "png":
        ext, kwargs = ".png", {"format": "PNG"}
    elif storage.startswith("webp"):
        ext, kwargs = ".webp", {"format": "WEBP", "quality": int(storage[4:])}
    else:
        ext, kwargs = ".jpg", {"format": "JPEG", "quality": int(storage[4:])}
    for name in class_names:
        (folder / name).mkdir(parents=True, exist_ok=True)
    for i, (pic, label) in enumerate(zip(pictures, labels, strict=True)):
        pic.save(folder / class_names[label] / f"{i:05d}{ext}", **kwargs)
    ds = cellkit.load(folder)
    order = np.asarray([int(Path(i).stem) for i in ds.ids])
    images = np.empty_like(ds.images)
    images[order] = ds.images
    return images


def test_external_overlays(overlays_dir: Path, full_mode: bool, pbc96_path: Path, results_dir: Path, hardware: str,
                           tmp_path: Path) -> None:
    if full_mode:
        ds = bench_cells(pbc96_path)
        data = f"pbc96, {FULL_N} random images of 14528 (seed {SEED}, the held-out table's draw)"
        corpora, storages = CORPORA, STORAGES
    else:
        ds = cellkit.load("sample")
        data = "bundled sample (480 images)"
        corpora, storages = ("twemoji",), ("jpeg90",)
    settings = {"images": len(ds), "fraction": FRACTION, "alpha": list(ALPHA), "reused_share": REUSED_SHARE,
                "reused_group": REUSED_GROUP, "seed": SEED}
    reports = {variant: HeldOutReport(settings={**settings, "training_families": list(kinds)})
               for variant, kinds in TRAINING.items()}
    start = time.perf_counter()
    for c, name in enumerate(corpora):
        corpus = Corpus(name, overlays_dir, ds.images.shape[1])
        pictures, bench = make_external_bench(ds.images, corpus, np.random.default_rng([SEED, c]))
        for storage in storages:
            images = save_and_load(pictures, ds.labels, list(ds.class_names), storage, tmp_path / f"{name}-{storage}")
            for variant, kinds in TRAINING.items():
                fit_start = time.perf_counter()
                det = SuperpositionDetector(overlay_kinds=kinds, random_state=SEED).fit(images)
                scores = det.score_samples(images)
                row = {"family": name, "storage": storage, "fit_seconds": round(time.perf_counter() - fit_start, 1),
                       **score_bench(bench, scores, det.threshold_)}
                reports[variant].rows.append(row)
                print(variant, name, storage, {k: row[k] for k in ("auroc", "precision", "recall", "flagged_clean")})
    minutes = (time.perf_counter() - start) / 60
    report = reports["all"]
    text = "\n".join([
        "# Superposition: third-party pictures, composited and saved by Pillow",
        "",
        f"Data: {data}. Overlays: Twemoji and Noto emoji (64 px PNGs) and Font Awesome 4.7 icons, fetched by "
        "`benchmarks/fetch_external_overlays.sh` (npm registry; evaluation only), on plain or gradient "
        f"backgrounds; {int(FRACTION * 100)}% of the images blended with `PIL.Image.blend` at alpha "
        f"{ALPHA[0]}-{ALPHA[1]}, half of them in groups of {REUSED_GROUP} sharing one overlay; every image written "
        "by Pillow (PNG, JPEG q90, q50, WebP q80: a format cellkit never trains on) and read back with `cellkit.load`. Detector: the default "
        "`SuperpositionDetector(random_state=0)` (all of cellkit's own families in training, none of these "
        "pictures), fitted on each folder without labels; default threshold.",
        f"Hardware: {hardware}. Whole table: {minutes:.1f} min. Command: `python -m pytest "
        f"benchmarks/test_bench_external_overlays.py{' --full' if full_mode else ''}`.",
        f"Targets of issue 16 (for cellkit's held-out families): {TARGETS}.",
        "",
        "## The default detector (every family of cellkit's own in its synthetic overlays)",
        "",
        report.to_markdown(),
        f"## Without the families nearest to these pictures ({', '.join(NEAREST)}: drawn after issue 16 described "
        "its cartoons)",
        "",
        "Does the detector find them only because cellkit's own cartoon, face and drawing generators were made to "
        "look like them? The same folders, the detector fitted with those three families removed:",
        "",
        reports["without nearest"].to_markdown(),
    ])
    atomic_write_text(results_dir / "quality_external.md", text)
    atomic_write_text(results_dir / "quality_external.json",
                      json.dumps({k: r.to_dict() for k, r in reports.items()}, indent=1) + "\n")
    print(text)
    auroc, recall, precision = FULL_BOUNDS if full_mode else (0.9, 0.3, 0.5)
    for r in (r for rep in reports.values() for r in rep.rows):
        assert r["auroc"] >= auroc and r["recall"] >= recall and r["precision"] >= precision, r


#: Beyond the bench's blend and alpha range: (row name, blend, alpha range), Twemoji, JPEG q90.
BEYOND = (("alpha 0.25-0.6 (the bench above)", "alpha", ALPHA),
          *((f"{mode}, alpha 0.25-0.6", mode, ALPHA) for mode in BLENDS),
          ("alpha 0.10-0.25 (fainter)", "alpha", (0.10, 0.25)),
          ("alpha 0.6-0.85 (the overlay dominates)", "alpha", (0.6, 0.85)))


def test_external_blends_and_alphas(overlays_dir: Path, full_mode: bool, pbc96_path: Path, results_dir: Path,
                                    hardware: str, tmp_path: Path) -> None:
    """Twemoji on the same cells blended the ways an image editor offers, and at alphas outside the bench's."""
    if full_mode:
        ds = bench_cells(pbc96_path)
        rows = BEYOND
    else:
        ds = cellkit.load("sample")
        rows = BEYOND[1:2]
    corpus = Corpus("twemoji", overlays_dir, ds.images.shape[1])
    detectors = {"default": {}, f"blend_modes={OWN_MODES}": {"blend_modes": OWN_MODES}}
    lines = ["| bench | detector | n | AUROC | precision | recall | F1 | recall reused | recall unique | flagged clean | "
             "colour filter: recall | either: recall | either: flagged clean |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    results = []
    for r, (name, blend, alpha) in enumerate(rows):
        pictures, bench = make_external_bench(ds.images, corpus, np.random.default_rng([SEED, 0]), blend=blend,
                                              alpha=alpha)
        images = save_and_load(pictures, ds.labels, list(ds.class_names), "jpeg90", tmp_path / f"beyond-{r}")
        tinted = ColorFilterDetector(random_state=SEED).fit(images).predict(images) == -1
        y = bench.superposed
        for detector, params in detectors.items():
            det = SuperpositionDetector(random_state=SEED, **params).fit(images)
            scores = det.score_samples(images)
            either = (scores < det.threshold_) | tinted
            row = {"bench": name, "detector": detector, **score_bench(bench, scores, det.threshold_),
                   "color_filter_recall": float(tinted[y].mean()), "either_recall": float(either[y].mean()),
                   "either_flagged_clean": float(either[~y].mean())}
            results.append(row)
            lines.append(f"| {name} | {detector} | {row['superposed']} | {row['auroc']:.4f} | {row['precision']:.3f} | "
                         f"{row['recall']:.3f} | {row['f1']:.3f} | {row['recall_reused']:.3f} | "
                         f"{row['recall_unique']:.3f} | {row['flagged_clean']:.4f} | "
                         f"{row['color_filter_recall']:.3f} | {row['either_recall']:.3f} | "
                         f"{row['either_flagged_clean']:.4f} |")
            print(lines[-1])
    if full_mode:
        text = "\n".join([
            "# Superposition: third-party pictures blended as an image editor does, and beyond the alpha range",
            "",
            f"Data: pbc96, {FULL_N} random images (seed {SEED}); Twemoji overlays as in "
            "[quality_external.md](quality_external.md) (the same images superposed, the same overlays), mixed in "
            "with a layer mode of Pillow's `ImageChops` at alpha, or by plain transparency at alphas outside the "
            "0.25-0.6 of every other bench; every image saved by Pillow as JPEG q90. The default detector (it "
            "trains on plain transparency at alpha 0.25-0.6 only), fitted without labels; default threshold. Screen "
            "and soft light over a flat or gradient background mostly tint the cell (the emoji shows faintly, if at "
            "all): such an image is a colour-filtered one to a person, so the colour-filter detector's flags "
            "(`ColorFilterDetector`, default threshold) and either detector's are reported too. Two superposition "
            f"detectors: the default, and one whose synthetic superpositions mix half of their overlays in through "
            f"cellkit's own editor modes {', '.join(OWN_MODES)} (`blend_modes=`); Pillow's overlay, hard light, "
            "soft light and difference are held out of both; its multiply and screen are the same formulas as two "
            "of cellkit's (a third-party implementation on third-party pictures, not held out).",
            f"Hardware: {hardware}. Command: `python -m pytest benchmarks/test_bench_external_overlays.py --full "
            "-k blends`.",
            "",
            *lines,
            "",
        ])
        atomic_write_text(results_dir / "quality_external_blends.md", text)
        atomic_write_text(results_dir / "quality_external_blends.json", json.dumps(results, indent=1) + "\n")
    for row in results:  # a guard, not a target: found as well as ever (plain transparency in full mode)
        if row["bench"] == BEYOND[0][0]:
            assert row["auroc"] >= 0.99 and row["recall"] >= 0.9, row
        elif not full_mode:
            assert row["auroc"] >= 0.9, row
