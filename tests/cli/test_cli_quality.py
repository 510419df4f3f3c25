"""``cellkit inspect`` and ``cellkit clean`` through ``main(argv)``; load -> clean -> load."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

import cellkit
from cellkit.cli import main
from cellkit.corrupt import corrupt_dataset, jpeg_roundtrip
from cellkit.corrupt.color import color_filter
from cellkit.data import sample_path, save_npz
from cellkit.quality.color import background_chroma, color_features


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def corrupted(tmp_path_factory) -> tuple[Path, np.ndarray, tuple[str, ...]]:
    """The sample with 10% superposed images and two exact duplicates, as an .npz."""
    result = corrupt_dataset(cellkit.load("sample"), superposed=0.1, color_filtered=0.0, seed=3)
    ds = result.dataset
    dup = ds.subset(np.concatenate([np.arange(len(ds)), [5, 77]]))
    ids = ds.ids + ("copy-of-5", "copy-of-77")
    path = tmp_path_factory.mktemp("data") / "corrupted.npz"
    np.savez(path, images=dup.images, labels=dup.labels, class_names=np.array(ds.class_names), ids=np.array(ids))
    truth = np.concatenate([result.is_superposed, [result.is_superposed[5], result.is_superposed[77]]])
    return path, truth, ids


@pytest.fixture(scope="module")
def inspected(corrupted, tmp_path_factory) -> tuple[Path, str]:
    path, _, _ = corrupted
    out = tmp_path_factory.mktemp("report")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["inspect", str(path), "--report", str(out)]) == 0
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    return out, buf.getvalue()


def test_inspect_prints_counts_statistics_and_issues(inspected) -> None:
    _, text = inspected
    assert "482 images 96x96" in text and "basophil" in text and "channel mean" in text
    assert "superposition" in text and "duplicates" in text


def test_inspect_report_files(inspected, corrupted) -> None:
    out, _ = inspected
    _, truth, ids = corrupted
    with open(out / "issues.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(ids)
    expected = {"index", "id", "superposition_score", "is_superposition_issue", "color_filter_score",
                "is_color_filter_issue", "duplicate_group"}
    assert expected <= set(rows[0])
    assert [r["id"] for r in rows] == list(ids)
    scores = np.array([float(r["superposition_score"]) for r in rows])
    assert np.all((scores >= 0) & (scores <= 1))
    # the detector, with no labels, ranks the superposed images first
    order = np.argsort(scores)
    assert truth[order[: truth.sum()]].mean() > 0.8
    groups = {int(rows[i]["duplicate_group"]) for i in (5, len(ids) - 2)}
    assert len(groups) == 1 and groups != {-1}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["statistics"]["images"] == len(ids)
    assert summary["issues"]["issues"]["duplicates"] == 2
    for kind in ("superposition", "color_filter", "duplicates"):
        png = cv2.imread(str(out / f"montage_{kind}.png"))
        assert png is not None and png.shape[0] > 96


def test_clean_removes_what_inspect_reports_and_keeps_the_rest(corrupted, tmp_path, capsys) -> None:
    path, truth, ids = corrupted
    out = tmp_path / "clean.npz"
    assert main(["clean", str(path), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "superposition:" in text and "duplicates: 2" in text
    cleaned = cellkit.load(out)
    with open(out.with_suffix(".removed.csv"), newline="") as fh:
        removed = {r["id"]: r["reasons"] for r in csv.DictReader(fh)}
    # every image is kept or listed as removed, never both, never lost
    assert set(cleaned.ids) | set(removed) == set(ids)
    assert not set(cleaned.ids) & set(removed)
    for original, copy in ((ids[5], "copy-of-5"), (ids[77], "copy-of-77")):  # one of each pair goes
        assert sum("duplicates" in removed.get(i, "") for i in (original, copy)) == 1
    flagged = np.array([i in removed and "superposition" in removed[i] for i in ids])
    assert truth[flagged].mean() > 0.8  # what it removes as superposed mostly is
    assert cleaned.class_names == cellkit.data.PBC_CLASSES
    kept = np.array([ids.index(i) for i in cleaned.ids])
    np.testing.assert_array_equal(cleaned.images, cellkit.load(path).images[kept])


@pytest.fixture(scope="module")
def with_casts(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """The sample with 12 images given strong blue casts, each its own (its blue-cast images are natural)."""
    ds = cellkit.load("sample")
    natural = background_chroma(color_features(ds.images))[:, 0] < 0.1
    cast = np.flatnonzero(~natural)[::37][:12]
    images = ds.images.copy()
    gains = np.random.default_rng(0).uniform([0.45, 0.6, 1.0], [0.7, 0.85, 1.2], (cast.size, 3))  # each its own
    images[cast] = jpeg_roundtrip(color_filter(images[cast], gains), 90)
    path = tmp_path_factory.mktemp("casts") / "casts.npz"
    np.savez(path, images=images, labels=ds.labels, class_names=np.array(ds.class_names), ids=np.array(ds.ids))
    return path, natural, cast


def test_clean_removes_strong_casts_by_default_and_weak_ones_on_request(with_casts, tmp_path, capsys) -> None:
    path, natural, cast = with_casts
    ids = cellkit.load(path).ids
    removed = {}
    for remove in ("color_filter", "color_filter:all"):
        out = tmp_path / f"{remove.replace(':', '-')}.npz"
        assert main(["clean", str(path), "--out", str(out), "--remove", remove, "--quiet"]) == 0
        with open(out.with_suffix(".removed.csv"), newline="") as fh:
            rows = list(csv.DictReader(fh))
        removed[remove] = {r["id"] for r in rows}
        assert all(float(r["color_filter_strength"]) >= 0 for r in rows)
    assert removed["color_filter"] == {ids[i] for i in cast}  # the strong casts, not the natural ones
    assert removed["color_filter:all"] >= removed["color_filter"] | {ids[i] for i in np.flatnonzero(natural)}


def test_inspect_reports_strength(with_casts, tmp_path, capsys) -> None:
    path, natural, cast = with_casts
    assert main(["inspect", str(path), "--report", str(tmp_path / "r")]) == 0
    assert "strong" in capsys.readouterr().out
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    strength = summary["issues"]["strength"]["color_filter"]
    assert strength["n_strong"] == cast.size and strength["n_weak"] >= int(natural.sum())
    with open(tmp_path / "r" / "issues.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert min(float(rows[i]["color_filter_strength"]) for i in cast) >= strength["strong_threshold_percent"]


@pytest.mark.parametrize("command", ["inspect", "clean"])
def test_blend_modes_flag_trains_the_superposition_detector_on_editor_modes(command, corrupted, tmp_path,
                                                                            monkeypatch) -> None:
    import cellkit.quality
    from cellkit.corrupt.superpose import BLEND_MODES

    real, used = cellkit.quality.find_issues, []

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        used.append(kwargs.get("superposition_detector"))
        return real(*args, **kwargs)

    monkeypatch.setattr(cellkit.quality, "find_issues", spy)
    path, truth, _ = corrupted
    extra = ["--out", str(tmp_path / "c.npz"), "--dry-run"] if command == "clean" else []
    assert main([command, str(path), *extra, "--quiet"]) == 0
    assert main([command, str(path), *extra, "--quiet", "--blend-modes", "--seed", "4"]) == 0
    assert used[0] is None
    det = used[1]
    assert det.blend_modes == tuple(BLEND_MODES) and det.random_state == 4
    assert ((det.predict(np.load(path)["images"]) == -1) & truth).sum() >= 0.8 * truth.sum()  # fitted, and finds them


def test_clean_dry_run_writes_nothing_and_never_overwrites_input(corrupted, tmp_path, capsys) -> None:
    path, _, _ = corrupted
    assert main(["clean", str(path), "--out", str(tmp_path / "x.npz"), "--dry-run", "--remove", "duplicates"]) == 0
    assert "dry run" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())
    assert main(["clean", str(path), "--out", str(path), "--remove", "duplicates"]) == 2
    assert "never modifies its input" in capsys.readouterr().err


def test_clean_folder_input_untouched(tmp_path, capsys) -> None:
    root = tmp_path / "cells"
    shutil.copytree(sample_path(), root)
    for extra in ("basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet"):
        assert (root / extra).is_dir()
    before = _digest(root)
    assert main(["clean", str(root), "--out", str(tmp_path / "c.npz"), "--remove", "duplicates", "--quiet"]) == 0
    assert _digest(root) == before
    assert len(cellkit.load(tmp_path / "c.npz")) == 480


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["clean", "sample", "--out", "x.npz", "--remove", "blur"], "--remove expects"),
        (["clean", "sample", "--out", "x.txt"], "ending in .npz"),
        (["inspect", "no/such/folder"], "no such file or folder"),
    ],
)
def test_bad_input_exits_2_with_a_message(argv, message, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_save_load_clean_round_trip_keeps_ids(tmp_path) -> None:
    ds = cellkit.load("sample").subset(np.arange(0, 480, 12))
    save_npz(ds, tmp_path / "a.npz")
    assert main(["clean", str(tmp_path / "a.npz"), "--out", str(tmp_path / "b.npz"), "--remove", "duplicates",
                 "--quiet"]) == 0
    assert cellkit.load(tmp_path / "b.npz").ids == ds.ids


def test_version_and_help(capsys) -> None:
    assert main(["--version"]) == 0
    assert cellkit.__version__ in capsys.readouterr().out
    assert main([]) == 2
    help_text = capsys.readouterr().out
    for command in ("inspect", "clean", "split", "backbones", "train", "evaluate", "ensemble", "export", "corrupt"):
        assert command in help_text


@pytest.mark.parametrize(
    "argv",
    [["inspect", "sample", "--report", "{tmp}/r"], ["clean", "sample", "--out", "{tmp}/c.npz"],
     ["split", "sample", "--out", "{tmp}/s"], ["backbones"],
     ["corrupt", "sample", "--out", "{tmp}/k.npz", "--corruptions", "defocus_blur", "--severity", "1"]],
    ids=lambda a: a[0],
)
def test_quiet_prints_nothing_on_stdout(argv, tmp_path, capsys) -> None:
    assert main([a.format(tmp=tmp_path) for a in argv] + ["--quiet"]) == 0
    assert capsys.readouterr().out == ""


def test_a_reader_that_leaves_the_pipe_early_gets_no_traceback(tmp_path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(f"{sys.executable} -m cellkit backbones | head -c 10", shell=True, capture_output=True,
                          text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
