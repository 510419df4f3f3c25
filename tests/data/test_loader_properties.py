"""Property tests of the loaders: whatever the bytes, a clean refusal or the exact image.

Random bytes, truncations of real files at any offset and random ``images`` arrays never
produce a traceback (only :class:`DataError` or an entry in ``Dataset.problems``) and never
a silently wrong image: a damaged file is reported, or it decodes to exactly the original
pixels.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cellkit
from cellkit.data import DataWarning
from cellkit.data.loading import sample_path
from cellkit.errors import DataError

SAMPLE_JPG = sorted((sample_path() / "basophil").glob("*.jpg"))[0]
JPEG = SAMPLE_JPG.read_bytes()
_ORIGINAL = cv2.cvtColor(cv2.imdecode(np.frombuffer(JPEG, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
PNG = cv2.imencode(".png", cv2.cvtColor(_ORIGINAL, cv2.COLOR_RGB2BGR))[1].tobytes()
FEW = settings(max_examples=40, deadline=None)
WEBP = cv2.imencode(".webp", cv2.cvtColor(_ORIGINAL, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes()


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """``root/a/good.jpg`` (a sample image); each example writes ``root/a/x.<ext>`` beside it."""
    root = tmp_path_factory.mktemp("prop")
    (root / "a").mkdir()
    shutil.copyfile(SAMPLE_JPG, root / "a" / "good.jpg")
    return root


def _load_with(tree: Path, name: str, data: bytes):  # noqa: ANN202 - (dataset or None, problems)
    """Load ``tree`` with ``a/<name>`` holding ``data``; the dataset and the reason given for the file."""
    for old in (tree / "a").glob("x.*"):
        old.unlink()
    target = tree / "a" / name
    target.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        ds = cellkit.load(tree)
    reasons = dict(ds.problems)
    return ds, reasons.get(str(target))


def _assert_reported_or_exact(ds, reason, name: str, original: np.ndarray) -> None:
    if reason is not None:
        assert isinstance(reason, str) and reason
        assert len(ds) == 1
        return
    assert len(ds) == 2, "the file was neither loaded nor reported"
    got = ds.images[list(ds.ids).index(f"a/{name}")]
    np.testing.assert_array_equal(got, original, err_msg="a damaged file decoded to other pixels without a word")


@FEW
@given(prefix=st.sampled_from([b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"II*\x00", WEBP[:20]]),
       body=st.binary(max_size=600), ext=st.sampled_from(["jpg", "png", "bmp", "tif", "webp"]))
def test_random_bytes_are_reported_never_a_traceback(tree, prefix, body, ext):
    ds, reason = _load_with(tree, f"x.{ext}", prefix + body)
    assert reason is not None or len(ds) == 2


@FEW
@given(cut=st.integers(0, len(JPEG) - 1), eoi=st.booleans())
def test_truncated_jpeg_is_reported(tree, cut, eoi):
    data = JPEG[:cut] + (b"\xff\xd9" if eoi else b"")
    ds, reason = _load_with(tree, "x.jpg", data)
    _assert_reported_or_exact(ds, reason, "x.jpg", _ORIGINAL)


@FEW
@given(cut=st.integers(0, len(PNG) - 1), iend=st.booleans())
def test_truncated_png_is_reported(tree, cut, iend):
    data = PNG[:cut] + (PNG[-12:] if iend else b"")
    ds, reason = _load_with(tree, "x.png", data)
    _assert_reported_or_exact(ds, reason, "x.png", _ORIGINAL)


@FEW
@given(cut=st.integers(0, len(WEBP) - 1))
def test_truncated_webp_is_reported(tree, cut):
    ds, reason = _load_with(tree, "x.webp", WEBP[:cut])
    _assert_reported_or_exact(ds, reason, "x.webp", _ORIGINAL)


def test_lossless_webp_decodes_to_the_exact_pixels(tree):
    ds, reason = _load_with(tree, "x.webp", WEBP)
    assert reason is None and len(ds) == 2
    np.testing.assert_array_equal(ds.images[list(ds.ids).index("a/x.webp")], _ORIGINAL)


@FEW
@given(start=st.integers(0, len(JPEG) - 8), length=st.integers(1, 256), value=st.sampled_from([0, 0xFF, 0x55]))
def test_overwritten_jpeg_bytes_are_reported_or_harmless(tree, start, length, value):
    data = bytearray(JPEG)
    end = min(len(data) - 2, start + length)  # keep the end-of-image marker
    data[start:end] = bytes([value]) * (end - start)
    ds, reason = _load_with(tree, "x.jpg", bytes(data))
    if bytes(data) == JPEG:
        assert reason is None
    elif reason is None:  # e.g. only a comment or unused table changed: must then be the same picture
        assert len(ds) == 2


@pytest.fixture(scope="module")
def good_npz(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("npz") / "good.npz"
    np.savez(path, images=np.zeros((3, 8, 8, 3), np.uint8), labels=np.arange(3))
    return path.read_bytes()


@FEW
@given(cut=st.integers(0, 10_000))
def test_truncated_npz_is_a_data_error(tmp_path_factory, good_npz, cut):
    path = tmp_path_factory.getbasetemp() / "cut.npz"
    path.write_bytes(good_npz[: cut % len(good_npz)])
    with pytest.raises(DataError, match="cut.npz"):
        cellkit.load(path)


@FEW
@given(body=st.binary(max_size=400), zip_magic=st.booleans())
def test_random_npz_bytes_are_a_data_error(tmp_path_factory, body, zip_magic):
    path = tmp_path_factory.getbasetemp() / "random.npz"
    path.write_bytes((b"PK\x03\x04" if zip_magic else b"") + body)
    with pytest.raises(DataError, match="random.npz"):
        cellkit.load(path)


_DTYPES = st.sampled_from(["uint8", "uint16", "int8", "int64", "float16", "float32", "float64", "bool", "complex64"])


@FEW
@given(shape=st.lists(st.integers(0, 5), min_size=0, max_size=5), dtype=_DTYPES, convert=st.booleans(),
       special=st.sampled_from([None, np.nan, np.inf, -1.0, 300.0]))
def test_random_npz_images_load_exactly_or_are_refused(tmp_path_factory, shape, dtype, convert, special):
    rng = np.random.default_rng(len(shape))
    images = (rng.random(shape) * 255).astype(dtype)
    if special is not None and images.size and images.dtype.kind in "fc":
        images.flat[0] = special
    path = tmp_path_factory.getbasetemp() / "shapes.npz"
    np.savez(path, images=images)
    try:
        ds = cellkit.load(path, convert=convert)
    except DataError as exc:
        assert "shapes.npz" in str(exc)
        return
    assert ds.images.dtype == np.uint8 and ds.images.ndim == 4 and ds.images.shape[-1] == 3
    assert ds.images.shape[:3] == images.shape[:3]
    if images.dtype == np.uint8 and images.ndim == 4 and images.shape[-1] == 3:
        np.testing.assert_array_equal(ds.images, images)
    if images.dtype.kind in "fc" and images.size:
        assert np.isfinite(images).all() and images.min() >= 0 and images.max() <= 255
