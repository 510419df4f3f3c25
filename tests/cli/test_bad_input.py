"""Bad input is refused cleanly by every command: exit 2, a message naming it, nothing touched.

A corpus of bad inputs (damaged and odd image files, bad ``.npz`` files, bad folder layouts,
bad models, bad recipes and splits, bad arguments) is built once; every applicable command
of :data:`DATA_COMMANDS` / :data:`MODEL_COMMANDS` runs on each. For every (input, command)
pair: ``main(argv)`` returns 2, stderr names the offending file or argument and says what
was expected, no traceback is printed, the inputs are byte-identical afterwards and no output
(not even a hidden temporary file) is left. A new command is checked by adding one line to
one of the two lists.

It lives in ``tests/cli/`` with the other command-line tests (``test_cli_quality.py``,
``test_cli_train.py``); a package's own refusals are tested in its folder (``tests/data/``
for the loaders, ``tests/train/`` for recipes...).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest

import cellkit
from cellkit.cli import main

TRAIN_FLAGS = ["--backbone", "baseline", "--epochs", "1", "--batch-size", "16", "--augmentation", "none"]

#: Commands that read a dataset: ``{data}`` is the bad input, ``{model}`` a good model, ``{out}`` the output.
DATA_COMMANDS: dict[str, list[str]] = {
    "inspect": ["inspect", "{data}", "--report", "{out}", "--quiet"],
    "clean": ["clean", "{data}", "--out", "{out}.npz", "--quiet"],
    "split": ["split", "{data}", "--out", "{out}", "--quiet"],
    "corrupt": ["corrupt", "{data}", "--out", "{out}.npz", "--quiet"],
    "train": ["train", "{data}", "--out", "{out}", *TRAIN_FLAGS, "--quiet"],
    "evaluate": ["evaluate", "{model}", "{data}", "--json", "{out}.json", "--quiet"],
    "calibrate": ["calibrate", "{model}", "{data}", "--out", "{out}.keras", "--quiet"],
    "predict": ["predict", "{model}", "{data}", "--out", "{out}.csv", "--quiet"],
}
#: Commands that read a model: ``{model}`` is the bad input, ``{data}`` good data.
MODEL_COMMANDS: dict[str, list[str]] = {
    "evaluate": ["evaluate", "{model}", "{data}", "--json", "{out}.json", "--quiet"],
    "calibrate": ["calibrate", "{model}", "{data}", "--out", "{out}.keras", "--quiet"],
    "predict": ["predict", "{model}", "{data}", "--out", "{out}.csv", "--quiet"],
    "ensemble": ["ensemble", "{model}", "{model}", "--out", "{out}.keras", "--quiet"],
    "export": ["export", "{model}", "--out", "{out}", "--keras-only", "--quiet"],
    "adapt": ["adapt", "{model}", "{data}", "--out", "{out}.keras", "--quiet"],
}
#: Commands whose dataset goes to the quality detectors (a minimum count and size).
DETECTOR_COMMANDS = ("inspect", "clean")
#: Commands that need labelled data (an unlabelled .npz or a flat folder of images is refused).
LABEL_COMMANDS = ("split", "train", "evaluate", "calibrate")


@dataclass(frozen=True)
class Bad:
    """One bad input: its path in the corpus, extra flags, and what the message must contain."""

    name: str
    path: str
    expect: tuple[str, ...]
    flags: tuple[str, ...] = ()
    commands: tuple[str, ...] | None = None  # None: every command of its list
    patch: str | None = None  # name of a monkeypatch set-up in PATCHES
    extra: dict = field(default_factory=dict)


# -- building the corpus --------------------------------------------------------------------------


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def _jpg(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_bomb(w: int = 100_000, h: int = 100_000) -> bytes:
    """A valid-looking PNG header declaring 10 gigapixels (the data would inflate to 30 GB)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 4096)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _class_tree(root: Path, images: dict[str, bytes] | None = None, classes: int = 2, per_class: int = 3) -> Path:
    """``root/c<k>/img<i>.png`` of good 32x32 RGB images, plus ``images`` (relative path -> bytes)."""
    rng = np.random.default_rng(len(str(root)))
    for c in range(classes):
        folder = root / f"c{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (folder / f"img{i}.png").write_bytes(_png(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)))
    for rel, data in (images or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _tiny_model(path: Path, size: int = 32, classes: int = 2) -> Path:
    import keras

    from cellkit.train import save_model

    inp = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inp))
    model = keras.Model(inp, keras.layers.Dense(classes, activation="softmax")(x))
    return save_model(model, path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """The bad inputs, good data and a good model, in one folder whose bytes are checked after each case."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    jpg = _jpg(cv2.resize(cellkit.load("sample").images[0], (64, 64)))
    zeroed = bytearray(jpg)
    zeroed[len(jpg) // 2 : len(jpg) // 2 + 120] = bytes(120)
    png = _png(rgb)
    crc_png = bytearray(png)
    crc_png[len(png) // 2] ^= 0xFF
    good_images = rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(24) % 2
    good = _npz(root / "good.npz", images=good_images, labels=labels, class_names=np.array(["a", "b"]))
    model = _tiny_model(root / "model.keras")
    _tiny_model(root / "model96.keras", size=96)
    data = {
        # npz files
        "empty.npz": b"",
        "text.npz": b"this is a text file, not an npz\n",
        "truncated.npz": good.read_bytes()[: good.stat().st_size // 2],
    }
    for name, content in data.items():
        (root / name).write_bytes(content)
    _npz(root / "noimages.npz", pictures=good_images)
    _npz(root / "float64.npz", images=good_images.astype(np.float64), labels=labels)
    _npz(root / "int64.npz", images=good_images.astype(np.int64), labels=labels)
    _npz(root / "bool.npz", images=good_images > 100, labels=labels)
    _npz(root / "ndim2.npz", images=good_images.reshape(24, -1), labels=labels)
    _npz(root / "ndim5.npz", images=good_images[None], labels=labels)
    _npz(root / "shortlabels.npz", images=good_images, labels=labels[:10])
    _npz(root / "neglabels.npz", images=good_images, labels=labels - 1)
    _npz(root / "rangelabels.npz", images=good_images, labels=labels + 5, class_names=np.array(["a", "b"]))
    _npz(root / "floatlabels.npz", images=good_images, labels=labels + 0.5)
    _npz(root / "badids.npz", images=good_images, labels=labels, ids=np.arange(3))
    nan = good_images.astype(np.float32)
    nan[0, 0, 0, 0] = np.nan
    _npz(root / "nan.npz", images=nan, labels=labels)
    inf = good_images.astype(np.float32)
    inf[1, 2, 3, 1] = np.inf
    _npz(root / "inf.npz", images=inf, labels=labels)
    np.savez(root / "pickled.npz", images=np.array([good_images[0], "x"], dtype=object), labels=labels)
    _npz(root / "few.npz", images=good_images[:5], labels=labels[:5])
    _npz(root / "tiny8.npz", images=good_images[:, :8, :8], labels=labels)
    _npz(root / "tiny4.npz", images=good_images[:, :4, :4], labels=labels)
    _npz(root / "zero.npz", images=good_images[:0], labels=labels[:0])
    (root / "Zellen-ß✓ données.npz").write_bytes(b"not a zip either")
    (root / "folder.npz").mkdir()
    (root / "notdata.txt").write_text("hello")
    # class-folder trees
    (root / "noclasses").mkdir()
    (root / "noclasses" / "readme.txt").write_text("no class folders here")
    (root / "loose").mkdir()
    (root / "loose" / "a.png").write_bytes(png)
    _class_tree(root / "strayimage", {"stray.png": png})
    _npz(root / "unlabelled.npz", images=good_images)
    _class_tree(root / "emptyclass")
    (root / "emptyclass" / "c2").mkdir()
    trees = {
        "zerobyte": {"c0/zero.jpg": b""},
        "textfile": {"c1/notes.txt": b"not an image"},
        "notimage": {"c1/fake.jpg": b"GIF89a not a jpeg"},
        "mixed": {"c1/big.png": _png(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8))},
        "gray": {"c0/gray.png": _png(rgb[..., 0])},
        "bit16": {"c0/deep.png": _png(rgb.astype(np.uint16) * 257)},
        "rgba": {"c1/alpha.png": _png(np.dstack([rgb, rgb[..., :1]]))},
        "zeroedjpg": {"c0/zeroed.jpg": bytes(zeroed)},
        "cutjpg": {"c1/cut.jpg": jpg[: len(jpg) // 2] + b"\xff\xd9"},
        "truncjpg": {"c1/trunc.jpg": jpg[: len(jpg) // 2]},
        "truncpng": {"c0/trunc.png": png[: len(png) // 2]},
        "cutpng": {"c0/cut.png": png[: len(png) // 2] + png[-12:]},
        "crcpng": {"c0/crc.png": bytes(crc_png)},
        "bomb": {"c0/bomb.png": _png_bomb()},
        "subfolder": {"c0/nested/x.png": png},
    }
    for name, files in trees.items():
        _class_tree(root / name, files)
    _class_tree(root / "looplink")
    os.symlink("loop", root / "looplink" / "c0" / "loop")
    os.symlink("nowhere.png", root / "looplink" / "c1" / "dangling.png")
    _class_tree(root / "goodtree")
    # models
    (root / "runfolder").mkdir()
    (root / "runfolder" / "notes.txt").write_text("no model here")
    (root / "text.keras").write_text("not a model")
    keras_bytes = model.read_bytes()
    (root / "trunc.keras").write_bytes(keras_bytes[: len(keras_bytes) // 2])
    import zipfile

    with zipfile.ZipFile(model) as zf:
        info = zf.infolist()[-1]
    damaged = bytearray(keras_bytes)
    damaged[info.header_offset + 30 + len(info.filename) + info.compress_size // 2] ^= 0xFF
    (root / "crc.keras").write_bytes(bytes(damaged))
    (root / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    # recipes and splits
    (root / "bad.toml").write_text("[recipe\nbackbone = ")
    (root / "badkey.toml").write_text('backbone = "baseline"\nno_such_setting = 3\n')
    (root / "notjson.json").write_text("{not json")
    (root / "wrongformat.json").write_text(json.dumps({"hello": 1}))
    (root / "other_split.json").write_text(_other_split(root))
    return {"root": root, "good": good, "model": model, "model96": root / "model96.keras"}


def _other_split(root: Path) -> str:
    """A split.json made by ``cellkit split`` for other data (12 images, other ids)."""
    other = _npz(root / "other-data.npz", images=np.zeros((12, 32, 32, 3), np.uint8), labels=np.arange(12) % 2)
    out = root / "other-split"
    assert main(["split", str(other), "--out", str(out), "--val", "2", "--test", "2", "--quiet"]) == 0
    text = (out / "split.json").read_text()
    (out / "split.json").unlink()
    out.rmdir()
    other.unlink()
    return text


# -- the cases ------------------------------------------------------------------------------------

S = ("--strict",)
DATA_CASES: list[Bad] = [
    Bad("missing", "no-such-data", ("no-such-data", "no such file")),
    Bad("unicode-missing", "données-ß✓/nope", ("données-ß✓", "no such file")),
    Bad("text-file", "notdata.txt", ("notdata.txt", "expected a folder of class sub-folders or of images, or an .npz")),
    Bad("empty-npz", "empty.npz", ("empty.npz", "not a valid .npz (zip) file")),
    Bad("text-npz", "text.npz", ("text.npz", "not a valid .npz (zip) file")),
    Bad("unicode-npz", "Zellen-ß✓ données.npz", ("Zellen-ß✓ données.npz", "not a valid .npz")),
    Bad("truncated-npz", "truncated.npz", ("truncated.npz", "not a valid .npz (zip) file")),
    Bad("no-images", "noimages.npz", ("noimages.npz", "'images'")),
    Bad("float64", "float64.npz", ("float64.npz", "float64", "expected uint8")),
    Bad("int64", "int64.npz", ("int64.npz", "int64", "expected uint8")),
    Bad("bool", "bool.npz", ("bool.npz", "bool", "expected uint8")),
    Bad("ndim2", "ndim2.npz", ("ndim2.npz", "expected (n, h, w, 3)")),
    Bad("ndim5", "ndim5.npz", ("ndim5.npz", "expected (n, h, w, 3)")),
    Bad("short-labels", "shortlabels.npz", ("shortlabels.npz", "10 labels for 24 images")),
    Bad("negative-labels", "neglabels.npz", ("neglabels.npz", ">= 0")),
    Bad("labels-out-of-range", "rangelabels.npz", ("rangelabels.npz", "no class name")),
    Bad("fractional-labels", "floatlabels.npz", ("floatlabels.npz", "expected integer")),
    Bad("bad-ids", "badids.npz", ("badids.npz", "'ids' has 3 entries")),
    Bad("nan", "nan.npz", ("nan.npz", "'images' contains NaN"), flags=("--convert",)),
    Bad("inf", "inf.npz", ("inf.npz", "NaN or infinite"), flags=("--convert",)),
    Bad("pickled", "pickled.npz", ("pickled.npz", "pickled")),
    Bad("folder-named-npz", "folder.npz", ("folder.npz", "no class sub-folders")),
    Bad("no-class-folders", "noclasses", ("noclasses", "no class sub-folders")),
    Bad("flat-folder-unlabelled", "loose", ("loose", "needs labelled data", "no labels"), commands=LABEL_COMMANDS),
    Bad("npz-unlabelled", "unlabelled.npz", ("unlabelled.npz", "needs labelled data"), commands=LABEL_COMMANDS),
    Bad("images-beside-class-folders", "strayimage", ("strayimage", "stray.png", "top level", "sub-folders")),
    Bad("empty-class", "emptyclass", ("c2", "holds no images")),
    Bad("zero-byte-jpg", "zerobyte", ("zero.jpg", "empty file"), flags=S),
    Bad("txt-in-class", "textfile", ("notes.txt", "not an image file name"), flags=S),
    Bad("not-an-image", "notimage", ("fake.jpg", "not an image"), flags=S),
    Bad("sub-folder", "subfolder", ("nested", "expected image files directly"), flags=S),
    Bad("mixed-sizes", "mixed", ("big.png", "differs from 32x32"), flags=S),
    Bad("grayscale", "gray", ("gray.png", "grayscale", "--convert"), flags=S),
    Bad("16-bit", "bit16", ("deep.png", "16-bit"), flags=S),
    Bad("rgba", "rgba", ("alpha.png", "RGBA"), flags=S),
    Bad("zeroed-jpeg", "zeroedjpg", ("zeroed.jpg", "corrupt JPEG"), flags=S),
    Bad("cut-jpeg-with-eoi", "cutjpg", ("cut.jpg", "corrupt JPEG"), flags=S),
    Bad("truncated-jpeg", "truncjpg", ("trunc.jpg", "truncated"), flags=S),
    Bad("truncated-png", "truncpng", ("trunc.png", "truncated"), flags=S),
    Bad("cut-png-with-iend", "cutpng", ("cut.png", "PNG"), flags=S),
    Bad("damaged-png", "crcpng", ("crc.png", "CRC"), flags=S),
    Bad("png-bomb", "bomb", ("bomb.png", "megapixels"), flags=S),
    Bad("symlink-loop", "looplink", ("loop", "broken symbolic link"), flags=S),
    Bad("unreadable-class-folder", "goodtree", ("c1", "cannot list the folder", "Permission denied"),
        patch="unreadable"),
    Bad("huge-size", "goodtree", ("--size", "megapixels"), flags=("--size", "100000x100000")),
    Bad("size-beyond-memory", "good.npz", ("--size", "memory"), flags=("--size", "300x300"), patch="lowmem"),
    Bad("folder-beyond-memory", "goodtree", ("--size", "memory"), flags=("--size", "300x300"), patch="lowmem"),
    Bad("too-few-for-detectors", "few.npz", ("few.npz", "too few", "at least 20"), commands=DETECTOR_COMMANDS),
    Bad("too-small-8", "tiny8.npz", ("tiny8.npz", "too small", "--size"), commands=DETECTOR_COMMANDS),
    Bad("too-small-4", "tiny4.npz", ("tiny4.npz", "too small"), commands=DETECTOR_COMMANDS),
    Bad("no-images-at-all", "zero.npz", ("zero.npz", "too few"), commands=DETECTOR_COMMANDS),
    Bad("model-size-mismatch", "goodtree", ("32x32", "48x48", "--size"), flags=("--size", "48x48"),
        commands=("evaluate", "calibrate", "predict")),
]

MODEL_CASES: list[Bad] = [
    Bad("missing-model", "no-model.keras", ("no-model.keras", "no such model")),
    Bad("folder-without-model", "runfolder", ("runfolder", "no model.keras")),
    Bad("text-keras", "text.keras", ("text.keras", "not a valid .keras file")),
    Bad("truncated-keras", "trunc.keras", ("trunc.keras", "not a valid .keras file")),
    Bad("bad-crc-keras", "crc.keras", ("crc.keras", "not a valid .keras file")),
    Bad("wrong-suffix", "model.h5", ("model.h5", "expected a .keras")),
]

#: Bad arguments: (name, argv template, what stderr must contain). ``{good}`` is good data.
ARG_CASES: list[tuple[str, list[str], tuple[str, ...]]] = [
    *[(f"{cmd}-size-0x5", [*argv, "--size", "0x5"], ("--size", "positive")) for cmd, argv in DATA_COMMANDS.items()],
    *[(f"{cmd}-size-axb", [*argv, "--size", "axb"], ("--size", "HxW")) for cmd, argv in DATA_COMMANDS.items()],
    ("train-negative-batch", ["train", "{data}", "--out", "{out}", *TRAIN_FLAGS, "--batch-size", "-1"],
     ("batch_size",)),
    ("train-zero-epochs", ["train", "{data}", "--out", "{out}", *TRAIN_FLAGS, "--epochs", "0"], ("epochs",)),
    ("train-bad-recipe-toml", ["train", "{data}", "--out", "{out}", "--recipe", "{root}/bad.toml", *TRAIN_FLAGS],
     ("bad.toml",)),
    ("train-recipe-unknown-key", ["train", "{data}", "--out", "{out}", "--recipe", "{root}/badkey.toml",
                                  *TRAIN_FLAGS], ("no_such_setting",)),
    ("train-unknown-preset", ["train", "{data}", "--out", "{out}", "--recipe", "no-such-preset", *TRAIN_FLAGS],
     ("no-such-preset",)),
    ("train-unknown-backbone", ["train", "{data}", "--out", "{out}", *TRAIN_FLAGS, "--backbone", "resnet9000"],
     ("resnet9000",)),
    ("train-split-not-json", ["train", "{data}", "--out", "{out}", *TRAIN_FLAGS, "--split-file",
                              "{root}/notjson.json"], ("notjson.json", "JSON")),
    ("train-split-wrong-format", ["train", "{data}", "--out", "{out}", *TRAIN_FLAGS, "--split-file",
                                  "{root}/wrongformat.json"], ("wrongformat.json",)),
    ("train-split-other-data", ["train", "{data}", "--out", "{out}", *TRAIN_FLAGS, "--split-file",
                                "{root}/other_split.json"], ("other_split.json",)),
    ("train-split-missing", ["train", "{data}", "--out", "{out}", *TRAIN_FLAGS, "--split-file",
                             "{root}/nope.json"], ("nope.json",)),
    ("evaluate-split-not-json", ["evaluate", "{model}", "{data}", "--split-file", "{root}/notjson.json",
                                 "--subset", "test", "--json", "{out}.json"], ("notjson.json", "JSON")),
    ("evaluate-split-other-data", ["evaluate", "{model}", "{data}", "--split-file", "{root}/other_split.json",
                                   "--subset", "test", "--json", "{out}.json"], ("other_split.json",)),
    ("evaluate-split-is-folder", ["evaluate", "{model}", "{data}", "--split-file", "{root}/runfolder",
                                  "--subset", "test", "--json", "{out}.json"], ("runfolder",)),
    ("evaluate-negative-batch", ["evaluate", "{model}", "{data}", "--batch-size", "-1", "--json", "{out}.json"],
     ("--batch-size",)),
    ("evaluate-confusion-not-png", ["evaluate", "{model}", "{data}", "--confusion", "{out}.jpg"],
     ("--confusion", ".png")),
    ("calibrate-out-suffix", ["calibrate", "{model}", "{data}", "--out", "{out}.h5"], ("--out", ".keras")),
    ("calibrate-negative-batch", ["calibrate", "{model}", "{data}", "--batch-size", "-1", "--out", "{out}.keras"],
     ("--batch-size",)),
    ("calibrate-split-other-data", ["calibrate", "{model}", "{data}", "--split-file", "{root}/other_split.json",
                                    "--out", "{out}.keras"], ("other_split.json",)),
    ("calibrate-subset-without-split", ["calibrate", "{model}", "{data}", "--subset", "val", "--out",
                                        "{out}.keras"], ("--subset", "--split-file")),
    ("predict-negative-batch", ["predict", "{model}", "{data}", "--batch-size", "-1", "--out", "{out}.csv"],
     ("--batch-size",)),
    ("predict-out-suffix", ["predict", "{model}", "{data}", "--out", "{out}.npz"], ("--out", ".csv")),
    ("predict-bad-tta", ["predict", "{model}", "{data}", "--tta", "d5", "--out", "{out}.csv"], ("--tta", "d5")),
    ("predict-bad-min-confidence", ["predict", "{model}", "{data}", "--min-confidence", "1.5", "--out",
                                    "{out}.csv"], ("--min-confidence",)),
    ("ensemble-weights-count", ["ensemble", "{model}", "{model}", "--weights", "1", "--out", "{out}.keras"],
     ("--weights",)),
    ("ensemble-bad-method", ["ensemble", "{model}", "{model}", "--method", "median", "--out", "{out}.keras"],
     ("median",)),
    ("ensemble-out-suffix", ["ensemble", "{model}", "{model}", "--out", "{out}.h5"], (".keras",)),
    ("clean-bad-remove", ["clean", "{data}", "--out", "{out}.npz", "--remove", "blur"], ("--remove", "blur")),
    ("clean-out-suffix", ["clean", "{data}", "--out", "{out}.csv"], (".npz",)),
    ("clean-report-missing", ["clean", "{data}", "--out", "{out}.npz", "--report", "{root}/nope"], ("--report", "nope")),
    ("clean-report-not-a-report", ["clean", "{data}", "--out", "{out}.npz", "--report", "{root}/runfolder"],
     ("--report", "runfolder", "issues.csv")),
    ("clean-remove-twice", ["clean", "{data}", "--out", "{out}.npz", "--remove", "color_filter,color_filter:all"],
     ("--remove",)),
    ("corrupt-bad-corruption", ["corrupt", "{data}", "--out", "{out}.npz", "--corruptions", "nosuch"],
     ("--corruptions", "nosuch")),
    ("corrupt-bad-severity", ["corrupt", "{data}", "--out", "{out}.npz", "--severity", "9"], ("--severity",)),
    ("split-bad-test-size", ["split", "{data}", "--out", "{out}", "--test", "abc"], ("--test", "abc")),
    ("split-too-large-test", ["split", "{data}", "--out", "{out}", "--test", "0.99"], ("test",)),
    ("export-negative-adapt-prior", ["export", "{model}", "--out", "{out}", "--adapt-to-batch", "-3"],
     ("--adapt-to-batch", ">= 0", "-3")),
    ("export-word-adapt-prior", ["export", "{model}", "--out", "{out}", "--adapt-to-batch", "many"],
     ("--adapt-to-batch", "many")),
]


def _data_params():
    for case in DATA_CASES:
        for cmd in case.commands or DATA_COMMANDS:
            yield pytest.param(case, DATA_COMMANDS[cmd], id=f"{case.name}-{cmd}")


def _model_params():
    for case in MODEL_CASES:
        for cmd in case.commands or MODEL_COMMANDS:
            yield pytest.param(case, MODEL_COMMANDS[cmd], id=f"{case.name}-{cmd}")


# -- the checks -----------------------------------------------------------------------------------


def _tree_digest(root: Path) -> dict[str, str]:
    """Every entry under ``root``: file bytes' hash, link target or folder marker."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _unreadable(monkeypatch, root: Path) -> None:
    """Listing ``root/c1`` fails as for a folder with mode 000 (tests may run as root)."""
    target = root / "goodtree" / "c1"
    real = Path.iterdir

    def iterdir(self):  # noqa: ANN001, ANN202
        if self == target:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)


def _low_memory(monkeypatch, root: Path) -> None:
    """Only 1 MiB of memory is available."""
    monkeypatch.setattr("cellkit.data.loading.available_memory", lambda: 2**20)


PATCHES = {"unreadable": _unreadable, "lowmem": _low_memory}


def _run_refused(argv: list[str], expect: tuple[str, ...], corpus: dict, out_parent: Path, capsys) -> None:
    """Run ``argv``; assert exit 2, the message, no traceback, inputs unchanged, nothing written."""
    before = _tree_digest(corpus["root"])
    rc = main(argv)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert rc == 2, f"exit {rc} for {argv}:\n{text}"
    assert "Traceback" not in text
    for token in expect:
        assert token in captured.err, f"{token!r} not in the message:\n{captured.err}"
    assert _tree_digest(corpus["root"]) == before, "an input was modified"
    assert not any(out_parent.iterdir()), f"output left behind: {list(out_parent.iterdir())}"


def _fill(template: list[str], corpus: dict, out_parent: Path, **values: str) -> list[str]:
    subs = {"root": str(corpus["root"]), "out": str(out_parent / "result"), "data": str(corpus["good"]),
            "model": str(corpus["model"]), **values}
    return [arg.format(**subs) for arg in template]


@pytest.mark.parametrize(("case", "template"), list(_data_params()))
def test_bad_data_is_refused(case, template, corpus, tmp_path, capsys, monkeypatch):
    if case.patch:
        PATCHES[case.patch](monkeypatch, corpus["root"])
    data = str(corpus["root"] / case.path)
    model = corpus["model"]
    argv = _fill(template, corpus, tmp_path, data=data, model=str(model)) + list(case.flags)
    _run_refused(argv, case.expect, corpus, tmp_path, capsys)


@pytest.mark.parametrize(("case", "template"), list(_model_params()))
def test_bad_model_is_refused(case, template, corpus, tmp_path, capsys):
    argv = _fill(template, corpus, tmp_path, model=str(corpus["root"] / case.path)) + list(case.flags)
    _run_refused(argv, case.expect, corpus, tmp_path, capsys)


@pytest.mark.parametrize(("name", "template", "expect"), ARG_CASES, ids=[c[0] for c in ARG_CASES])
def test_bad_arguments_are_refused(name, template, expect, corpus, tmp_path, capsys):
    _run_refused(_fill(template, corpus, tmp_path), expect, corpus, tmp_path, capsys)


def test_the_corpus_has_at_least_100_cases():
    n = len(list(_data_params())) + len(list(_model_params())) + len(ARG_CASES)
    assert n >= 100, n


# -- left out with a warning (not --strict), and the good data of the corpus ----------------------


@pytest.mark.parametrize(
    ("tree", "file", "reason"),
    [
        ("zeroedjpg", "zeroed.jpg", "corrupt JPEG"),
        ("cutjpg", "cut.jpg", "corrupt JPEG"),
        ("looplink", "loop", "broken symbolic link"),
        ("looplink", "dangling.png", "broken symbolic link"),
        ("crcpng", "crc.png", "CRC"),
        ("cutpng", "cut.png", "PNG"),
        ("bomb", "bomb.png", "megapixels"),
        ("textfile", "notes.txt", "not an image file name"),
    ],
)
def test_damaged_file_is_left_out_with_a_warning(tree, file, reason, corpus, tmp_path, capsys):
    out = tmp_path / "split"
    assert main(["split", str(corpus["root"] / tree), "--out", str(out), "--val", "1", "--test", "1", "--quiet"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("warning: left out")]
    assert len(lines) == (2 if tree == "looplink" else 1), err
    assert any(file in line and reason in line for line in lines), err
    doc = json.loads((out / "split.json").read_text())
    assert file not in json.dumps(doc["splits"])


def test_one_odd_first_file_does_not_make_the_others_the_wrong_size(tmp_path):
    rng = np.random.default_rng(1)
    root = _class_tree(tmp_path / "data", {"c0/aaa_first.png": _png(rng.integers(0, 256, (40, 40, 3), np.uint8))})
    with pytest.warns(cellkit.data.DataWarning, match="aaa_first.png"):
        ds = cellkit.load(root)
    assert ds.images.shape == (6, 32, 32, 3)
    assert [p for p, _ in ds.problems] == [str(root / "c0" / "aaa_first.png")]


def test_size_is_applied_to_npz_images_as_to_folders(corpus):
    ds = cellkit.load(corpus["good"], size=(16, 24))
    assert ds.images.shape == (24, 16, 24, 3)
    raw = np.load(corpus["good"])["images"]
    expected = cv2.resize(raw[3], (24, 16), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(ds.images[3], expected)


def test_model_size_mismatch_names_both_sizes(corpus, tmp_path, capsys):
    argv = ["evaluate", str(corpus["model96"]), str(corpus["good"]), "--json", str(tmp_path / "m.json"), "--quiet"]
    _run_refused(argv, ("96x96", "32x32"), corpus, tmp_path, capsys)


def test_clean_sample_has_no_false_problems(sample):
    assert sample.problems == () and len(sample) == 480


# -- plugins --------------------------------------------------------------------------------------


def test_plugin_calling_sys_exit_on_import_is_skipped_with_a_warning(tmp_path, monkeypatch):
    from cellkit.plugins import PluginWarning, create_plugin_manager

    site = tmp_path / "site"
    site.mkdir()
    (site / "cellkit_exit_plugin.py").write_text("import sys\nsys.exit(3)\n")
    info = site / "cellkit_exit-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cellkit-exit\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[cellkit]\nexiter = cellkit_exit_plugin\n")
    monkeypatch.syspath_prepend(str(site))
    try:
        with pytest.warns(PluginWarning, match=r"'exiter' \(cellkit-exit 1.0\).*SystemExit"):
            pm = create_plugin_manager(autoload=True)
    finally:
        sys.modules.pop("cellkit_exit_plugin", None)
    assert pm.get_plugin("exiter") is None


def test_plugin_registered_at_run_time_with_a_misspelt_hook_is_refused():
    from cellkit.plugins import PluginError, create_plugin_manager, hookimpl

    class Typo:
        @hookimpl
        def cellkit_register_backbone(self):
            return []

    pm = create_plugin_manager(autoload=False)
    with pytest.raises(PluginError, match=r"'typo'.*did you mean 'cellkit_register_backbones'"):
        pm.register(Typo(), name="typo")
    assert pm.get_plugin("typo") is None


# -- TensorFlow's log lines -----------------------------------------------------------------------


def test_tensorflow_log_lines_are_silenced_unless_verbose(corpus, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    base = [sys.executable, "-m", "cellkit"]
    args = ["evaluate", str(corpus["model"]), str(corpus["good"]), "--quiet"]
    quiet = subprocess.run([*base, *args], env=env, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    tf_markers = ("oneDNN", "cuInit", "cuda drivers", "absl::InitializeLog", "cpu_feature_guard")
    assert not [m for m in tf_markers if m in quiet.stderr], quiet.stderr
    assert quiet.stdout == ""  # --quiet: nothing but errors
    verbose = subprocess.run([*base, "--verbose", *args], env=env, capture_output=True, text=True, timeout=300)
    assert verbose.returncode == 0, verbose.stderr
    if not any(m in verbose.stderr for m in tf_markers):
        pytest.skip("this TensorFlow build logs nothing at start-up: nothing to silence")
