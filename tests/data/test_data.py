"""Loading datasets: layouts, the bundled sample, every error path, batching."""

from __future__ import annotations

import shutil
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

import cellkit
from cellkit.data import Dataset, DataWarning, iter_batches, load, sample_path, save_npz
from cellkit.errors import DataError


def _write(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok = cv2.imwrite(str(path), img)
    assert ok
    return path


def _tree(tmp_path: Path, n_per_class: int = 3, classes=("a", "b"), ext: str = ".png") -> Path:
    rng = np.random.default_rng(1)
    for c in classes:
        for i in range(n_per_class):
            _write(tmp_path / c / f"{c}{i}{ext}", rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    return tmp_path


def test_sample_is_bundled_with_citation(sample: Dataset) -> None:
    assert sample.images.shape == (480, 96, 96, 3)
    assert sample.images.dtype == np.uint8
    assert sample.class_names == cellkit.data.PBC_CLASSES
    assert all(c >= 40 for c in sample.class_counts().values())
    citation = (sample_path() / "CITATION.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in citation and "10.1016/j.dib.2020.105474" in citation
    assert sample.ids[0].startswith("basophil/") and sample.problems == ()


def test_folder_round_trip_pixels_are_rgb(tmp_path: Path) -> None:
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV's order
    _write(tmp_path / "x" / "one.png", bgr)
    ds = load(tmp_path)
    assert ds.images[0, 0, 0].tolist() == [0, 0, 200]
    assert ds.ids == ("x/one.png",) and ds.labels.tolist() == [0]


@pytest.mark.parametrize("ext", [".jpg", ".png", ".tif", ".bmp"])
def test_folder_formats(tmp_path: Path, ext: str) -> None:
    ds = load(_tree(tmp_path, ext=ext))
    assert len(ds) == 6 and ds.class_names == ("a", "b")
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_class_names_fix_the_order(tmp_path: Path) -> None:
    ds = load(_tree(tmp_path), class_names=["b", "a"])
    assert ds.class_names == ("b", "a") and ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert ds.ids[0].startswith("b/")
    with pytest.raises(DataError, match="missing folders \\['c'\\]"):
        load(tmp_path, class_names=["a", "b", "c"])


def test_bad_file_is_reported_and_the_rest_kept(tmp_path: Path) -> None:
    _tree(tmp_path)
    (tmp_path / "a" / "broken.png").write_bytes(b"not an image at all")
    with pytest.warns(DataWarning, match="broken.png"):
        ds = load(tmp_path)
    assert len(ds) == 6
    assert len(ds.problems) == 1 and ds.problems[0][0].endswith("broken.png")
    with pytest.raises(DataError, match="broken.png: not an image"):
        load(tmp_path, strict=True)


def test_truncated_jpeg_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(sample_path() / "basophil", root / "basophil")
    good = next((root / "basophil").iterdir()).read_bytes()
    (root / "basophil" / "cut.jpg").write_bytes(good[: int(len(good) * 0.7)])
    with pytest.warns(DataWarning):
        ds = load(root)
    assert len(ds) == 60
    assert [r for _, r in ds.problems] == ["truncated or corrupt JPEG (no end-of-image marker)"]


@pytest.mark.parametrize("params", [[cv2.IMWRITE_WEBP_QUALITY, 101], [cv2.IMWRITE_WEBP_QUALITY, 80]],
                         ids=["lossless", "lossy"])
def test_webp_folders_load_like_png(tmp_path: Path, params: list[int]) -> None:
    """A class folder of WebP files (lossless: the same pixels; lossy: close) loads like PNG."""
    source = load("sample").subset(np.arange(0, 480, 60))  # one image per class
    for image, label, name in zip(source.images, source.labels, source.ids, strict=True):
        folder = tmp_path / source.class_names[label]
        folder.mkdir(exist_ok=True)
        ok, data = cv2.imencode(".webp", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
        assert ok
        (folder / (Path(name).stem + ".webp")).write_bytes(data.tobytes())
    ds = load(tmp_path, strict=True)
    assert len(ds) == 8 and ds.class_names == source.class_names and ds.labels.tolist() == source.labels.tolist()
    err = np.abs(ds.images.astype(int) - source.images.astype(int))
    assert err.max() == 0 if params[1] > 100 else err.mean() < 4


@pytest.mark.parametrize(
    ("header", "size"),
    [
        # extended (VP8X): canvas 9,000 x 7,001 (24-bit fields store size - 1)
        (b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0" + (8999).to_bytes(3, "little") + (7000).to_bytes(3, "little"),
         (7001, 9000)),
        # lossy (VP8): frame tag, start code 9d 01 2a, 14-bit width and height
        (b"RIFF\0\0\0\0WEBPVP8 \0\0\0\0\0\0\0\x9d\x01\x2a" + (300).to_bytes(2, "little") + (200).to_bytes(2, "little"),
         (200, 300)),
        # lossless (VP8L): signature 0x2f, 14 bits width - 1, 14 bits height - 1
        (b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f" + ((95) | (63 << 14)).to_bytes(4, "little"), (64, 96)),
    ],
    ids=["VP8X", "VP8", "VP8L"],
)
def test_webp_header_sizes_are_read_before_decoding(header: bytes, size: tuple[int, int]) -> None:
    """The declared size is checked against the pixel limit before OpenCV allocates anything."""
    from cellkit.data._integrity import header_size

    assert header_size(header, "WebP") == size


def test_webp_decompression_bomb_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    shutil.copyfile(sorted((sample_path() / "basophil").glob("*.jpg"))[0], tmp_path / "a" / "good.jpg")
    body = b"VP8X\x0a\0\0\0\0\0\0\0" + (16383).to_bytes(3, "little") + (16383).to_bytes(3, "little")
    (tmp_path / "a" / "bomb.webp").write_bytes(b"RIFF" + (4 + len(body)).to_bytes(4, "little") + b"WEBP" + body)
    with pytest.warns(DataWarning, match="bomb.webp"):
        ds = load(tmp_path)
    assert len(ds) == 1 and "decompression bomb" in ds.problems[0][1]


def test_empty_class_folder_names_it(tmp_path: Path) -> None:
    _tree(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty.*holds no images"):
        load(tmp_path)


def test_missing_path_and_wrong_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        load(tmp_path / "nope")
    txt = tmp_path / "x.txt"
    txt.write_text("hi")
    with pytest.raises(DataError, match="x.txt: expected a folder"):
        load(txt)
    with pytest.raises(DataError, match="no class sub-folders"):
        load(tmp_path)


@pytest.mark.parametrize(
    ("img", "word"),
    [
        (np.full((12, 10), 100, np.uint8), "grayscale"),
        (np.full((12, 10, 4), 100, np.uint8), "RGBA"),
        (np.full((12, 10, 3), 40000, np.uint16), "16-bit"),
    ],
)
def test_non_rgb8_refused_unless_convert(tmp_path: Path, img: np.ndarray, word: str) -> None:
    _tree(tmp_path)
    _write(tmp_path / "a" / "odd.png", img)
    with pytest.warns(DataWarning, match=word):
        ds = load(tmp_path)
    assert len(ds) == 6
    converted = load(tmp_path, convert=True)
    assert len(converted) == 7 and converted.images.dtype == np.uint8
    odd = converted.images[converted.ids.index("a/odd.png")]
    expected = 40000 >> 8 if word == "16-bit" else 100
    assert np.all(odd == expected)


def test_size_mismatch_refused_or_resized(tmp_path: Path) -> None:
    _tree(tmp_path)
    _write(tmp_path / "b" / "big.png", np.zeros((24, 20, 3), np.uint8))
    with pytest.warns(DataWarning, match="size 20x24 differs from 10x12"):
        assert len(load(tmp_path)) == 6
    assert load(tmp_path, size=(12, 10)).images.shape == (7, 12, 10, 3)


def test_npz_layouts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 6, 6, 3), dtype=np.uint8)
    np.savez(tmp_path / "plain.npz", images=images, labels=np.array([[0], [1], [2], [1], [0]]))
    ds = load(tmp_path / "plain.npz")
    assert ds.labels.tolist() == [0, 1, 2, 1, 0] and ds.ids == ("0", "1", "2", "3", "4")
    np.savez(tmp_path / "onehot.npz", images=images, labels=np.eye(3, dtype=np.float32)[[0, 1, 2, 1, 0]])
    assert load(tmp_path / "onehot.npz").labels.tolist() == [0, 1, 2, 1, 0]
    np.savez(tmp_path / "unlabelled.npz", images=images)
    assert load(tmp_path / "unlabelled.npz").labels is None


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((2, 4, 4, 3), np.uint8)}, "expected an 'images' array"),
        ({"images": np.zeros((2, 4, 4, 3), np.float32)}, "dtype float32; expected uint8"),
        ({"images": np.zeros((2, 4, 4), np.uint8)}, "grayscale"),
        ({"images": np.zeros((2, 4, 4, 5), np.uint8)}, "expected \\(n, h, w, 3\\) RGB"),
        ({"images": np.zeros((2, 4, 4, 3), np.uint8), "labels": np.zeros(3, int)}, "3 labels for 2 images"),
        ({"images": np.zeros((2, 4, 4, 3), np.uint8), "labels": np.array([0.5, 1])}, "expected integer"),
    ],
)
def test_npz_errors_name_the_file(tmp_path: Path, arrays: dict, message: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message) as info:
        load(path)
    assert str(path) in str(info.value)


def test_pickled_npz_is_never_loaded(tmp_path: Path) -> None:
    path = tmp_path / "pickled.npz"
    np.savez(path, images=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(DataError, match="pickled"):
        load(path)


def test_float_npz_converted_on_request(tmp_path: Path) -> None:
    path = tmp_path / "f.npz"
    np.savez(path, images=np.full((1, 2, 2, 3), 0.5, np.float32))
    assert load(path, convert=True).images.max() == 128


def test_save_npz_round_trip_is_atomic(tmp_path: Path, sample: Dataset) -> None:
    part = sample.subset(np.arange(0, 480, 40))
    out = save_npz(part, tmp_path / "part.npz")
    back = load(out)
    np.testing.assert_array_equal(back.images, part.images)
    assert back.ids == part.ids and back.class_names == part.class_names
    np.testing.assert_array_equal(back.labels, part.labels)
    with pytest.raises(DataError, match="must end in .npz"):
        save_npz(part, tmp_path / "part.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part.npz"]


def test_iter_batches_bounds_memory(tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(sample_path(), root)
    batches = list(iter_batches(root, batch_size=64))
    assert [len(b) for b in batches] == [64] * 7 + [32]
    assert sum((b.ids for b in batches), ()) == load(root).ids
    tracemalloc.start()
    for _ in iter_batches(root, batch_size=32):
        pass
    _, peak_small = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    one_batch = 32 * 96 * 96 * 3
    whole = 480 * 96 * 96 * 3
    assert peak_small < whole / 2, (peak_small, one_batch)


def test_dataset_validation() -> None:
    with pytest.raises(DataError, match="uint8 array"):
        Dataset(np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(DataError, match="shape \\(2,\\)"):
        Dataset(np.zeros((2, 4, 4, 3), np.uint8), labels=np.zeros(3, int))
    with pytest.raises(DataError, match="no class name"):
        Dataset(np.zeros((2, 4, 4, 3), np.uint8), labels=np.array([0, 2]), class_names=("a", "b"))
    ds = Dataset(np.zeros((2, 4, 4, 3), np.uint8), labels=np.array([0, 1]))
    assert ds.num_classes == 2 and ds.class_counts() == {"0": 1, "1": 1}
    assert ds.subset(np.array([False, True])).ids == ("1",)
