"""``cellkit explain MODEL PATH --out DIR``, end to end: the files it writes, atomically, and what it refuses.

The model is a classifier whose weights are set, not fitted (red on the left half of the
image means class "red"; as in ``tests/inference/test_saliency.py``), saved as a ``.keras``
file, so its right answers and its errors are known.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

from cellkit.cli import main
from cellkit.inference.ensemble import build_ensemble
from cellkit.inference.saving import save_model
from cellkit.inference.tta import with_tta
from saliency_toys import left_half_red_model

SIZE = 32


def _model() -> keras.Model:
    return left_half_red_model(SIZE)


def _images(size: int = SIZE) -> np.ndarray:
    """Six grey images, then six with a red blob on the left."""
    rng = np.random.default_rng(0)
    images = np.repeat(rng.integers(60, 200, (12, size, size, 1)), 3, axis=3).astype(np.uint8)
    images[6:, 10:19, 2:11] = [220, 40, 40]
    return images


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def _tree(root: Path, size: int = SIZE) -> Path:
    """grey/ and red/ class folders; one red image filed under grey/ (a confident error)."""
    for i, image in enumerate(_images(size)):
        label = "grey" if i < 6 or i == 11 else "red"
        _write(root / label / f"cell{i:02d}.png", image)
    return root


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("explain_inputs")
    model = _model()
    run = root / "run"
    run.mkdir()
    save_model(model, run / "model.keras")
    (run / "metrics.json").write_text(json.dumps({"class_names": ["grey", "red"]}), encoding="utf-8")
    flat = root / "flat"
    for i, image in enumerate(_images()):
        _write(flat / f"new{i:02d}.png", image)
    (root / "empty").mkdir()
    return {
        "model": save_model(model, root / "model.keras"),
        "ensemble": save_model(build_ensemble([model, with_tta(_model(), "flips")]), root / "ensemble.keras"),
        "run": run,
        "tree": _tree(root / "tree"),
        "flat": flat,
        "big": _tree(root / "big", size=48),
        "empty": root / "empty",
    }


def _hidden_leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_explain_writes_the_montages_and_the_csv_quietly(files, tmp_path, capsys):
    out = tmp_path / "explained"
    argv = ["explain", str(files["model"]), str(files["tree"]), "--out", str(out), "--per-class", "3", "--quiet"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    names = ["explained.csv", "gradcam_errors.png", "gradcam_per_class.png", "occlusion_errors.png",
             "occlusion_per_class.png"]
    assert sorted(p.name for p in out.iterdir()) == [".cellkit-output.json", *names]
    manifest = json.loads((out / ".cellkit-output.json").read_text(encoding="utf-8"))
    assert manifest["kind"] == "explanations" and manifest["files"] == names
    assert _hidden_leftovers(tmp_path) == []  # the folder was built aside and swapped in
    rows = list(csv.DictReader((out / "explained.csv").read_text(encoding="utf-8").splitlines()))
    assert list(rows[0]) == ["montage", "position", "id", "label", "predicted", "confidence"]
    errors = [r for r in rows if r["montage"] == "errors"]
    assert [(r["id"], r["label"], r["predicted"]) for r in errors] == [("grey/cell11.png", "grey", "red")]
    per_class = [r for r in rows if r["montage"] == "per_class"]
    assert len(per_class) == 6 and all(r["label"] == r["predicted"] for r in per_class)
    for name in names[1:]:
        assert cv2.imread(str(out / name)) is not None


def test_explain_prints_a_summary_and_reads_class_names_from_a_run_folder(files, tmp_path, capsys):
    out = tmp_path / "explained"
    argv = ["explain", str(files["run"]), str(files["flat"]), "--out", str(out), "--method", "gradcam"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "12 of 12 images" in text and "explained" in text and "no labels: no errors montage" in text
    assert sorted(p.name for p in out.iterdir()) == [".cellkit-output.json", "explained.csv", "gradcam_per_class.png"]
    rows = list(csv.DictReader((out / "explained.csv").read_text(encoding="utf-8").splitlines()))
    assert {r["predicted"] for r in rows} == {"grey", "red"} and {r["label"] for r in rows} == {""}


def test_explain_takes_an_ensemble_with_tta_members(files, tmp_path):
    out = tmp_path / "explained"
    assert main(["explain", str(files["ensemble"]), str(files["tree"]), "--out", str(out), "--quiet",
                 "--method", "occlusion", "--errors", "0", "--batch-size", "7"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [".cellkit-output.json", "explained.csv",
                                                     "occlusion_per_class.png"]


def test_an_existing_output_is_replaced_only_with_overwrite_and_only_whole(files, tmp_path, capsys, monkeypatch):
    out = tmp_path / "explained"
    argv = ["explain", str(files["model"]), str(files["tree"]), "--out", str(out), "--quiet", "--method", "gradcam"]
    assert main(argv) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(argv) == 2
    assert "exists and is not empty" in capsys.readouterr().err

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("interrupted halfway")

    monkeypatch.setattr("cellkit.evaluate.explain.overlay", broken)
    with pytest.raises(RuntimeError, match="interrupted halfway"):
        main([*argv, "--overwrite"])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched
    assert _hidden_leftovers(tmp_path) == []
    monkeypatch.undo()
    assert main([*argv, "--overwrite", "--method", "occlusion"]) == 0
    assert "occlusion_per_class.png" in {p.name for p in out.iterdir()}
    assert "gradcam_per_class.png" not in {p.name for p in out.iterdir()}  # replaced whole


BAD = {
    "missing model": (["explain", "{tmp}/nope.keras", "{tree}", "--out", "{out}"], ["nope.keras", "no such model"]),
    "not a model": (["explain", "{tree}", "{tree}", "--out", "{out}"], ["no model.keras"]),
    "wrong image size": (["explain", "{model}", "{big}", "--out", "{out}"], ["expects 32x32", "--size 32x32"]),
    "empty folder": (["explain", "{model}", "{empty}", "--out", "{out}"], ["empty"]),
    "unknown method": (["explain", "{model}", "{tree}", "--out", "{out}", "--method", "gradcam,lime"],
                       ["--method", "gradcam, occlusion", "lime"]),
    "nothing to show": (["explain", "{model}", "{tree}", "--out", "{out}", "--per-class", "0", "--errors", "0"],
                        ["--per-class and --errors are both 0"]),
    "negative count": (["explain", "{model}", "{tree}", "--out", "{out}", "--errors", "-1"], ["--errors must be >= 0"]),
    "bad batch size": (["explain", "{model}", "{tree}", "--out", "{out}", "--batch-size", "0"], ["--batch-size"]),
    "output inside the input": (["explain", "{model}", "{tree}", "--out", "{tree}/explained"],
                                ["--out lies inside the input folder"]),
    "output is a file": (["explain", "{model}", "{tree}", "--out", "{model}"], ["--out", "not a folder"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_refused_with_exit_2_and_a_named_reason(case, files, tmp_path, capsys):
    template, expected = BAD[case]
    paths = {name: str(path) for name, path in files.items()} | {"tmp": str(tmp_path), "out": str(tmp_path / "out")}
    tree_before = sorted(p.relative_to(files["tree"]) for p in files["tree"].rglob("*"))
    assert main([a.format(**paths) for a in template] + ["--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert captured.err.startswith("cellkit explain: error: ")
    for text in expected:
        assert text in captured.err, captured.err
    assert not (tmp_path / "out").exists() and _hidden_leftovers(tmp_path) == []
    assert sorted(p.relative_to(files["tree"]) for p in files["tree"].rglob("*")) == tree_before
    assert files["model"].is_file()
