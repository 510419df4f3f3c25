"""More overlay families: flat cartoons, text, graphics, microscopy and faces.

:mod:`cellkit.corrupt.overlays` has the first three kinds (``natural``, ``drawn``,
``cells``). The families here are the ones an independent bench found missing -- the
report's dataset was corrupted with memes -- and each is built from material a different
hand made, so that holding one family out of the detector's training is a real test:

* ``"cartoon"``: flat-colour clip-art: emoji-like faces, large filled circles, polygons,
  stars and hearts with hard edges, on plain or gradient backgrounds (OpenCV).
* ``"text"``: captions and text blocks in the TrueType fonts that ship with matplotlib
  (DejaVu Sans/Serif/Mono, STIX, Computer Modern; regular, bold, italic), 1 to 4 lines,
  bold meme captions with an outline among them, rendered by Pillow.
* ``"graphics"``: charts drawn by matplotlib (bars, lines, pies, scatter, heat maps), UI
  screenshots (windows, title bars, buttons, text lines) and the logos and clip-art that
  ship with scikit-image and matplotlib.
* ``"microscopy"``: crops of the microscopy pictures bundled with scikit-image
  (immunohistochemistry, cell, retina, microaneurysms).
* ``"faces"``: photographs of faces and people: scikit-image's LFW faces and cat,
  matplotlib's Grace Hopper.

Every generator is seeded by ``rng``: the same seed gives the same overlays. The two
families cropped from photographs, ``"microscopy"`` and ``"faces"``, are defined in
:mod:`cellkit.corrupt._crops`.

Example:
    >>> import numpy as np
    >>> from cellkit.corrupt.overlay_families import cartoon_overlays
    >>> bank = cartoon_overlays(3, (96, 96), rng=0)
    >>> bank.shape, bool(np.array_equal(bank, cartoon_overlays(3, (96, 96), rng=0)))
    ((3, 96, 96, 3), True)
"""

from __future__ import annotations

import functools
import os
import string
import warnings
from collections.abc import Sequence

import cv2
import numpy as np

from cellkit.corrupt._bank import draw_bank
from cellkit.corrupt._crops import MICROSCOPY_PICTURES, crop, faces_overlays, microscopy_overlays

__all__ = [
    "MICROSCOPY_PICTURES",
    "cartoon_overlays",
    "faces_overlays",
    "graphics_overlays",
    "microscopy_overlays",
    "text_overlays",
]

_WORDS = (
    "WHEN YOU", "ME", "NOBODY", "SUCH WOW", "MUCH", "LOL", "OMG", "WHY", "THE CELL", "MONDAY", "EXAM", "TFW",
    "HOMEWORK", "DEADLINE", "ONE DOES NOT", "SIMPLY", "Y U NO", "BRACE YOURSELVES", "IS THIS", "A BLOOD CELL",
    "hello", "world", "click here", "sale", "error", "loading", "cancel", "ok", "menu", "2024", "99%", "$19.99",
)


def _rgb(rng: np.random.Generator, saturated: bool = False) -> tuple[int, int, int]:
    if saturated:
        hsv = np.uint8([[[rng.integers(0, 180), rng.integers(150, 256), rng.integers(150, 256)]]])
        return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])  # type: ignore[return-value]
    return tuple(int(c) for c in rng.integers(0, 256, size=3))  # type: ignore[return-value]


def _plain_or_gradient(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = size
    c0 = np.array(_rgb(rng, saturated=rng.random() < 0.5), np.float32)
    if rng.random() < 0.5:
        return np.broadcast_to(c0.astype(np.uint8), (h, w, 3)).copy()
    c1 = np.array(_rgb(rng), np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.cos(theta) * xx / w + np.sin(theta) * yy / h
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return (c0 + t[..., None] * (c1 - c0)).astype(np.uint8)


def _star(centre: tuple[int, int], radius: int, points: int, rotation: float) -> np.ndarray:
    angles = rotation + np.arange(2 * points) * np.pi / points
    radii = np.where(np.arange(2 * points) % 2 == 0, radius, radius * 0.45)
    return np.stack([centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)], 1).astype(np.int32)


def _heart(centre: tuple[int, int], radius: int) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 60)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return np.stack([centre[0] + x * radius / 17, centre[1] + y * radius / 17], 1).astype(np.int32)


def _face(img: np.ndarray, rng: np.random.Generator, line: int) -> None:
    h, w = img.shape[:2]
    r = int(rng.uniform(0.3, 0.75) * min(h, w))
    c = (int(rng.integers(w // 4, 3 * w // 4 + 1)), int(rng.integers(h // 4, 3 * h // 4 + 1)))
    skin = (255, 204, 0) if rng.random() < 0.6 else _rgb(rng, saturated=True)
    ink = (0, 0, 0) if rng.random() < 0.7 else _rgb(rng)
    cv2.circle(img, c, r, skin, -1, line)
    if rng.random() < 0.5:
        cv2.circle(img, c, r, ink, max(1, r // 12), line)
    eye_dx, eye_dy = int(r * 0.35), int(r * 0.3)
    eye = (max(1, int(r * rng.uniform(0.08, 0.16))), max(1, int(r * rng.uniform(0.1, 0.22))))
    for sx in (-1, 1):
        cv2.ellipse(img, (c[0] + sx * eye_dx, c[1] - eye_dy), eye, 0, 0, 360, ink, -1, line)
    mouth = int(rng.integers(0, 3))
    axes = (int(r * 0.5), int(r * rng.uniform(0.2, 0.45)))
    if mouth == 0:  # smile
        cv2.ellipse(img, (c[0], c[1] + int(r * 0.1)), axes, 0, 10, 170, ink, max(1, r // 10), line)
    elif mouth == 1:  # open laugh
        cv2.ellipse(img, (c[0], c[1] + int(r * 0.15)), axes, 0, 0, 180, ink, -1, line)
        cv2.ellipse(img, (c[0], c[1] + int(r * 0.15)), (axes[0] // 2, axes[1] // 2), 0, 0, 180, (220, 40, 60), -1, line)
    else:  # frown
        cv2.ellipse(img, (c[0], c[1] + int(r * 0.55)), axes, 0, 200, 340, ink, max(1, r // 10), line)


def _cartoon_one(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = size
    img = np.ascontiguousarray(_plain_or_gradient(size, rng))
    line = cv2.LINE_AA if rng.random() < 0.5 else cv2.LINE_8
    if rng.random() < 0.6:
        _face(img, rng, line)
    for _ in range(int(rng.integers(0 if rng.random() < 0.6 else 1, 4))):
        colour = _rgb(rng, saturated=rng.random() < 0.7)
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        r = int(rng.uniform(0.15, 0.6) * min(h, w))
        shape = int(rng.integers(0, 5))
        if shape == 0:
            cv2.circle(img, c, r, colour, -1, line)
        elif shape == 1:
            k = int(rng.integers(3, 7))
            a = rng.uniform(0, 2 * np.pi) + np.arange(k) * 2 * np.pi / k
            pts = np.stack([c[0] + r * np.cos(a), c[1] + r * np.sin(a)], 1).astype(np.int32)
            cv2.fillPoly(img, [pts], colour, line)
        elif shape == 2:
            cv2.fillPoly(img, [_star(c, r, int(rng.integers(5, 8)), rng.uniform(0, np.pi))], colour, line)
        elif shape == 3:
            cv2.fillPoly(img, [_heart(c, r)], colour, line)
        else:
            x0, y0 = int(rng.integers(-w // 4, w)), int(rng.integers(-h // 4, h))
            cv2.rectangle(img, (x0, y0), (x0 + 2 * r, y0 + r), colour, -1, line)
    return img


def cartoon_overlays(n: int, size: Sequence[int] = (96, 96), rng: int | np.random.Generator | None = None) -> np.ndarray:
    """``n`` flat-colour clip-art overlays (faces, filled shapes), ``(n, h, w, 3)`` ``uint8``."""
    return draw_bank(_cartoon_one, n, size, rng)


def import_drawing_libraries() -> None:
    """Import what the families draw with (Matplotlib, Pillow, scikit-image's pictures) now.

    They are imported lazily, at the first drawing. Code that draws overlays from several
    threads at once calls this first, in one thread: two threads importing one package
    at the same moment can see it half-initialised and fail.
    """
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401
    import PIL.ImageDraw  # noqa: F401
    import PIL.ImageFont  # noqa: F401
    import skimage.data  # noqa: F401


@functools.cache
def _font_files() -> tuple[str, ...]:
    import matplotlib

    folder = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    names = sorted(f for f in os.listdir(folder) if f.endswith(".ttf") and ("DejaVu" in f or f.startswith(("STIXGeneral", "cm"))))
    return tuple(os.path.join(folder, f) for f in names if not f.startswith(("cmex", "cmsy", "cmmi")))


def _text_one(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    h, w = size
    scale = 2  # draw at twice the size, then shrink: anti-aliased like a screenshot of a meme
    background = _plain_or_gradient((h * scale, w * scale), rng)
    img = Image.fromarray(background)
    draw = ImageDraw.Draw(img)
    fonts = _font_files()
    meme = rng.random() < 0.5
    font_file = fonts[int(rng.integers(0, len(fonts)))]
    if meme:
        bold = [f for f in fonts if "Bold" in f] or list(fonts)
        font_file = bold[int(rng.integers(0, len(bold)))]
    lines = int(rng.integers(1, 5))
    px = int(rng.uniform(0.12, 0.45) * h * scale / max(1, lines ** 0.5))
    font = ImageFont.truetype(font_file, max(8, px))
    fill = (255, 255, 255) if meme and rng.random() < 0.7 else _rgb(rng)
    stroke = max(1, px // 12) if meme else 0
    y = int(rng.uniform(-0.1, 0.4) * h * scale)
    for _ in range(lines):
        words = " ".join(_WORDS[i] for i in rng.integers(0, len(_WORDS), size=int(rng.integers(1, 3))))
        if rng.random() < 0.3:
            words = "".join(rng.choice(list(string.ascii_letters + string.digits), size=int(rng.integers(3, 10))))
        x = int(rng.uniform(-0.2, 0.3) * w * scale)
        draw.text((x, y), words, font=font, fill=fill, stroke_width=stroke, stroke_fill=(0, 0, 0))
        y += int(px * rng.uniform(1.0, 1.4))
    return cv2.resize(np.asarray(img), (w, h), interpolation=cv2.INTER_AREA)


def text_overlays(n: int, size: Sequence[int] = (96, 96), rng: int | np.random.Generator | None = None) -> np.ndarray:
    """``n`` text overlays (captions, text blocks, many fonts and sizes), ``(n, h, w, 3)`` ``uint8``."""
    return draw_bank(_text_one, n, size, rng)


@functools.cache
def _chartdraw_bank(seed: int = 0, count: int = 48) -> tuple[np.ndarray, ...]:
    """Charts drawn by matplotlib (Agg), 192x192, cached: drawing is the slow part."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rng = np.random.default_rng(seed)
    out = []
    styles = ("bar", "line", "pie", "scatter", "heatmap", "hist")
    for i in range(count):
        fig = Figure(figsize=(2, 2), dpi=96)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(111)
        kind = styles[i % len(styles)]
        k = int(rng.integers(3, 9))
        if kind == "bar":
            ax.bar(range(k), rng.uniform(1, 10, k), color=[np.array(_rgb(rng)) / 255 for _ in range(k)])
        elif kind == "line":
            for _ in range(int(rng.integers(1, 4))):
                ax.plot(np.cumsum(rng.normal(size=20)), linewidth=float(rng.uniform(1, 4)))
            ax.grid(rng.random() < 0.5)
        elif kind == "pie":
            ax.pie(rng.uniform(1, 5, k))
        elif kind == "scatter":
            ax.scatter(rng.normal(size=40), rng.normal(size=40), c=rng.uniform(size=40), s=rng.uniform(10, 80, 40))
        elif kind == "heatmap":
            ax.imshow(rng.uniform(size=(k, k)), cmap=("viridis", "magma", "coolwarm", "jet")[i % 4])
        else:
            ax.hist(rng.normal(size=200), bins=k + 5)
        ax.set_title(("Sales", "Results", "Q3", "Accuracy", "Loss", "Users")[i % 6], fontsize=9)
        fig.canvas.draw()
        out.append(np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy())
    return tuple(out)


@functools.cache
def _logos() -> tuple[np.ndarray, ...]:
    """Logos and clip-art that ship with scikit-image and matplotlib (RGBA composited on white)."""
    import matplotlib
    import skimage.data

    pics = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pics.append(np.asarray(skimage.data.logo()))
        pics.append(np.asarray(skimage.data.colorwheel()))
    sample = os.path.join(matplotlib.get_data_path(), "sample_data")
    for name in ("logo2.png", "Minduka_Present_Blue_Pack.png"):
        path = os.path.join(sample, name)
        if os.path.isfile(path):
            pic = cv2.imread(path, cv2.IMREAD_UNCHANGED)
            if pic is not None:
                pics.append(cv2.cvtColor(pic, cv2.COLOR_BGRA2RGBA if pic.shape[2] == 4 else cv2.COLOR_BGR2RGB))
    out = []
    for pic in pics:
        if pic.shape[2] == 4:
            a = pic[:, :, 3:4].astype(np.float32) / 255
            pic = (pic[:, :, :3] * a + 255 * (1 - a)).astype(np.uint8)
        out.append(np.ascontiguousarray(pic[:, :, :3]))
    return tuple(out)


def _screenshot_one(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = size
    s = 3
    img = np.full((h * s, w * s, 3), _rgb(rng) if rng.random() < 0.3 else (240, 240, 240), np.uint8)
    bar = int(rng.integers(8, 20)) * s
    cv2.rectangle(img, (0, 0), (w * s, bar), _rgb(rng, saturated=True), -1)
    y = bar + 4 * s
    while y < h * s:
        kind = rng.random()
        if kind < 0.3:  # button
            x0 = int(rng.integers(0, w * s // 2))
            cv2.rectangle(img, (x0, y), (x0 + int(rng.integers(20, 60)) * s, y + 10 * s), _rgb(rng, True), -1)
            y += 14 * s
        else:  # a line of "text"
            x = int(rng.integers(2, 10)) * s
            while x < w * s:
                length = int(rng.integers(3, 15)) * s
                cv2.rectangle(img, (x, y), (x + length, y + 3 * s), (60, 60, 60), -1)
                x += length + 3 * s
            y += 7 * s
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def _graphics_one(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    kind = rng.random()
    if kind < 0.4:
        return crop(_chartdraw_bank(), size, rng, min_side=96)
    if kind < 0.7:
        return _screenshot_one(size, rng)
    return crop(_logos(), size, rng, min_side=64)


def graphics_overlays(n: int, size: Sequence[int] = (96, 96), rng: int | np.random.Generator | None = None) -> np.ndarray:
    """``n`` charts, UI screenshots and logos, ``(n, h, w, 3)`` ``uint8``."""
    return draw_bank(_graphics_one, n, size, rng)


