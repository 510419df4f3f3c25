"""Per-file integrity checks of image files, before and while they are decoded.

OpenCV decodes a damaged JPEG or PNG without an error: libjpeg prints a line such as
``Corrupt JPEG data: premature end of data segment`` on the process's standard error and
fills the rest of the picture with grey. These checks turn such damage into a reason the
loader reports for that file:

* :func:`header_size` reads the declared width and height from the JPEG, PNG or BMP header
  without decoding, so a decompression bomb is refused before any pixel is allocated;
* :func:`png_damage` verifies every PNG chunk's CRC and that the compressed image data
  inflates to exactly the size the header declares;
* :func:`decode_jpeg_checked` decodes a JPEG while capturing libjpeg's warnings from the
  C-level standard error (file descriptor 2); any warning about the data is returned as
  the file's problem. The redirection is serialised by a lock, so it is safe with the
  loader's decoding threads; other text written meanwhile is passed on to standard error.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import struct
import sys
import tempfile
import threading
import zlib
from collections.abc import Iterator

import cv2
import numpy as np

__all__ = [
    "MAX_IMAGE_PIXELS",
    "captured_stderr",
    "decode_jpeg_checked",
    "header_size",
    "libjpeg_trouble",
    "pass_on",
    "png_damage",
]

#: Largest image (width x height) the loader decodes: 50 megapixels. A header that declares
#: more is refused before decoding (a decompression bomb would otherwise exhaust memory).
MAX_IMAGE_PIXELS = 50_000_000

_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_LIBJPEG_PROBLEM = re.compile(r"JPEG|Huffman|marker|SOS|progression|Bogus", re.IGNORECASE)
_capture_lock = threading.Lock()


def header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """``(height, width)`` declared by a JPEG, PNG, WebP or BMP header; ``None`` if not found."""
    if fmt == "WebP":
        return _webp_header_size(data)
    if fmt == "PNG":
        if len(data) >= 24 and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return h, w
        return None
    if fmt == "BMP":
        if len(data) >= 26:
            w, h = struct.unpack("<ii", data[18:26])
            return abs(h), abs(w)
        return None
    if fmt == "JPEG":
        return _jpeg_header_size(data)
    return None


def _webp_header_size(data: bytes) -> tuple[int, int] | None:
    """The canvas size of the first chunk of a WebP file: extended (VP8X), lossy (VP8) or lossless (VP8L)."""
    chunk, body = data[12:16], data[20:]
    if chunk == b"VP8X" and len(body) >= 10:
        return int.from_bytes(body[7:10], "little") + 1, int.from_bytes(body[4:7], "little") + 1
    if chunk == b"VP8 " and len(body) >= 10 and body[3:6] == b"\x9d\x01\x2a":
        return int.from_bytes(body[8:10], "little") & 0x3FFF, int.from_bytes(body[6:8], "little") & 0x3FFF
    if chunk == b"VP8L" and len(body) >= 5 and body[0] == 0x2F:
        bits = int.from_bytes(body[1:5], "little")
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    return None


def _jpeg_header_size(data: bytes) -> tuple[int, int] | None:
    """Walk the JPEG marker segments up to the first start-of-frame."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF_MARKERS:
            if pos + 9 > len(data):
                return None
            h, w = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return h, w
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        pos += 2 + length
    return None


def too_many_pixels(size: tuple[int, int] | None) -> str | None:
    """The reason to refuse an image of declared ``size`` (h, w), or ``None`` if it is acceptable."""
    if size is None:
        return None
    h, w = size
    if h * w > MAX_IMAGE_PIXELS:
        return (
            f"image of {w}x{h} pixels ({h * w / 1e6:.0f} megapixels) is larger than the limit of "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels (expected a microscope image; possibly a decompression bomb)"
        )
    return None


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_damage(data: bytes) -> str | None:
    """Why a PNG is damaged (bad chunk CRC, image data of the wrong size), or ``None`` if intact."""
    pos, idat, header = 8, [], None
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if len(body) != length or pos + 12 + length > len(data):
            return f"truncated PNG: chunk {kind.decode('latin-1')!r} is cut short"
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(kind + body) != crc:
            return f"corrupt PNG: chunk {kind.decode('latin-1')!r} fails its CRC check (damaged bytes)"
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    else:
        return "truncated PNG (no IEND chunk)"
    if header is None or len(header) != 13:
        return "corrupt PNG: no valid IHDR header chunk"
    return _png_data_damage(header, idat)


def _png_data_damage(header: bytes, idat: list[bytes]) -> str | None:
    """Compare the inflated size of the IDAT stream with what the IHDR declares."""
    w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    channels = _PNG_CHANNELS.get(color)
    if channels is None or w == 0 or h == 0:
        return f"corrupt PNG: invalid header (color type {color}, size {w}x{h})"
    if interlace:
        passes = [(8, 8, 0, 0), (8, 8, 4, 0), (4, 8, 0, 4), (4, 4, 2, 0), (2, 4, 0, 2), (2, 2, 1, 0), (1, 2, 0, 1)]
        dims = [(-(-(w - x0) // dx), -(-(h - y0) // dy)) for dx, dy, x0, y0 in passes]
    else:
        dims = [(w, h)]
    expected = sum(ph * (1 + -(-(pw * channels * depth) // 8)) for pw, ph in dims if pw > 0 and ph > 0)
    inflater = zlib.decompressobj()
    got = 0
    try:
        for chunk in idat:
            while chunk:
                got += len(inflater.decompress(chunk, 1 << 20))
                if got > expected:
                    return "corrupt PNG: the image data is longer than its header declares"
                chunk = inflater.unconsumed_tail
        got += len(inflater.flush())
    except zlib.error as exc:
        return f"corrupt PNG: the compressed image data is damaged ({exc})"
    if got != expected or not inflater.eof:
        return f"corrupt or truncated PNG: {got} of {expected} bytes of image data"
    return None


class _Captured:
    text = ""


@contextlib.contextmanager
def captured_stderr() -> Iterator[_Captured]:
    """Capture the C-level standard error (fd 2) of the block; ``.text`` holds it afterwards.

    The loader decodes a whole batch of files, on several threads, inside one capture: in
    the common case (nothing printed) no file pays for a check of its own.
    """
    out = _Captured()
    with _capture_lock:
        try:
            saved = os.dup(2)
        except OSError:  # no standard error to redirect
            yield out
            return
        try:
            sys.stderr.flush()
            sink = _sink()
            sink.seek(0)
            sink.truncate()
            os.dup2(sink.fileno(), 2)
            try:
                yield out
            finally:
                os.dup2(saved, 2)
                sink.seek(0)
                out.text = sink.read().decode("utf-8", "replace")
        finally:
            os.close(saved)


def libjpeg_trouble(text: str) -> bool:
    """Whether captured text holds a libjpeg warning about the data."""
    return any(_LIBJPEG_PROBLEM.search(line) for line in text.splitlines())


def pass_on(text: str) -> None:
    """Write captured text that is not a libjpeg warning back to standard error."""
    others = [line.strip() for line in text.splitlines() if line.strip() and not _LIBJPEG_PROBLEM.search(line)]
    if others:
        os.write(2, ("\n".join(others) + "\n").encode())


def decode_jpeg_checked(data: bytes, flags: int) -> tuple[np.ndarray | None, str | None]:
    """Decode a JPEG with OpenCV; also return libjpeg's warnings about the data (``None`` if clean)."""
    with captured_stderr() as captured:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    return img, _libjpeg_problem(captured.text)


_sink_file = None
_sink_pid = -1


def _sink():  # noqa: ANN202 - a binary temporary file
    """The temporary file libjpeg's messages are captured in (one per process, used under the lock).

    A forked child makes its own: a parent's file would share its offset with the child.
    """
    global _sink_file, _sink_pid
    if _sink_file is None or _sink_file.closed or _sink_pid != os.getpid():
        _sink_file = tempfile.TemporaryFile()
        _sink_pid = os.getpid()
        atexit.register(_sink_file.close)
    return _sink_file


def _libjpeg_problem(text: str) -> str | None:
    """libjpeg's lines about the data, joined; other captured text goes back to standard error."""
    problems, others = [], []
    for line in text.splitlines():
        if line.strip():
            (problems if _LIBJPEG_PROBLEM.search(line) else others).append(line.strip())
    if others:
        os.write(2, ("\n".join(others) + "\n").encode())
    if not problems:
        return None
    return "corrupt JPEG: " + "; ".join(dict.fromkeys(problems)) + " (the decoder had to guess part of the image)"
