"""Decode image files to 8-bit RGB, or say why a file is refused; many files on several threads.

The refusal policy (grayscale, RGBA and 16-bit files refused unless ``convert``; damaged,
truncated and oversized files refused always) is described in :mod:`cellkit.data.loading`;
the integrity checks themselves are in :mod:`cellkit.data._integrity`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from cellkit.data._integrity import (
    captured_stderr,
    decode_jpeg_checked,
    header_size,
    libjpeg_trouble,
    pass_on,
    png_damage,
    too_many_pixels,
)

__all__ = ["decode", "decode_many"]

_DECODE_THREADS = max(1, min(4, os.cpu_count() or 1))

_MAGIC = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"BM": "BMP",
}


def _format_of(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((fmt for magic, fmt in _MAGIC.items() if data.startswith(magic)), None)


def _is_truncated(data: bytes, fmt: str | None) -> bool:
    """End-of-stream checks: OpenCV may return a half-decoded JPEG/PNG without error."""
    if fmt == "JPEG":
        return b"\xff\xd9" not in data[-64:]
    if fmt == "PNG":
        return b"IEND" not in data[-16:]
    if fmt == "WebP":  # the RIFF header declares the file's length
        return len(data) < 8 + int.from_bytes(data[4:8], "little")
    return False


def _decode_checked(data: bytes, fmt: str, jpeg_check: bool = True) -> np.ndarray | str:
    """Decode with OpenCV after the header and integrity checks; the image or the reason it was refused.

    ``jpeg_check=False`` decodes a JPEG without capturing libjpeg's warnings for this file
    alone (the caller captures them for a whole batch: :func:`decode_many`).
    """
    declared = header_size(data, fmt)
    reason = too_many_pixels(declared)
    if reason is None and fmt == "PNG":
        reason = png_damage(data)
    if reason is not None:
        return reason
    if fmt == "JPEG" and jpeg_check:
        img, reason = decode_jpeg_checked(data, cv2.IMREAD_UNCHANGED)
        if reason is not None:
            return reason
    else:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        return f"corrupt {fmt}: OpenCV cannot decode it"
    return img


def decode(path: Path, convert: bool, size: tuple[int, int] | None, jpeg_check: bool = True) -> np.ndarray | str:
    """Decode one file to uint8 RGB ``(h, w, 3)``, or return the reason it was refused."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"
    if not data:
        return "empty file"
    fmt = _format_of(data)
    if fmt is None:
        return "not an image (no JPEG, PNG, WebP, TIFF or BMP signature)"
    if _is_truncated(data, fmt):
        return f"truncated or corrupt {fmt} (no end-of-image marker)"
    img = _decode_checked(data, fmt, jpeg_check)
    if isinstance(img, str):
        return img
    if img.dtype == np.uint16:
        if not convert:
            return "16-bit image; expected 8-bit RGB (pass convert=True / --convert to scale to 8 bits)"
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        return f"unsupported pixel type {img.dtype}; expected 8-bit RGB"
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        if not convert:
            return "grayscale image; expected RGB (pass convert=True / --convert to replicate the channel)"
        img = cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        if not convert:
            return "RGBA image; expected RGB (pass convert=True / --convert to drop the alpha channel)"
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        return f"{img.shape[2]}-channel image; expected RGB"
    if size is not None and img.shape[:2] != size:
        img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return img


def decode_many(
    paths: Sequence[Path], convert: bool, size: tuple[int, int] | None
) -> list[np.ndarray | str]:
    """Decode ``paths`` on several threads, inside one capture of libjpeg's warnings.

    In the common case nothing is printed and no file pays for a check of its own; when
    libjpeg did warn, the batch is decoded again one file at a time, each with its own
    capture, so that the warning is the problem of the file that caused it.
    """
    with captured_stderr() as captured:
        out = _decode_threads(paths, convert, size, jpeg_check=False)
    if libjpeg_trouble(captured.text):
        out = [decode(p, convert, size) for p in paths]
    pass_on(captured.text)
    return out


def _decode_threads(
    paths: Sequence[Path], convert: bool, size: tuple[int, int] | None, jpeg_check: bool
) -> list[np.ndarray | str]:
    if len(paths) < 16 or _DECODE_THREADS == 1:
        return [decode(p, convert, size, jpeg_check) for p in paths]
    # one task per thread (not per file): OpenCV releases the GIL while decoding
    step = -(-len(paths) // _DECODE_THREADS)
    chunks = [paths[i : i + step] for i in range(0, len(paths), step)]
    with ThreadPoolExecutor(len(chunks)) as pool:
        parts = pool.map(lambda chunk: [decode(p, convert, size, jpeg_check) for p in chunk], chunks)
        return [out for part in parts for out in part]
