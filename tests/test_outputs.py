"""Outputs never destroy an input and appear whole or not at all (cellkit._outputs and its users)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from cellkit._outputs import MANIFEST, OutputFolder, atomic_file_group
from cellkit.cli import main
from cellkit.errors import DataError


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _write(folder: OutputFolder, **files: str) -> None:
    with folder.build() as work:
        for name, text in files.items():
            (work / name).write_text(text)


def test_folder_is_built_aside_and_replaced_whole(tmp_path):
    dest = tmp_path / "out"
    _write(OutputFolder(dest), a="1", stale="old")
    manifest = json.loads((dest / MANIFEST).read_text())
    assert manifest["files"] == ["a", "stale"] and manifest["kind"] == "output"
    _write(OutputFolder(dest, overwrite=True), a="2")
    assert sorted(p.name for p in dest.iterdir()) == [MANIFEST, "a"]  # the stale file went with the old folder
    assert (dest / "a").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary or old folder left


def test_failed_build_leaves_the_previous_folder_untouched(tmp_path):
    dest = tmp_path / "out"
    _write(OutputFolder(dest), a="1")
    before = _tree(dest)
    with pytest.raises(RuntimeError), OutputFolder(dest, overwrite=True).build() as work:
        (work / "a").write_text("half")
        raise RuntimeError("killed mid-way")
    assert _tree(dest) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_overwrite_refuses_foreign_files_and_removes_nothing(tmp_path):
    dest = tmp_path / "out"
    _write(OutputFolder(dest), a="1")
    (dest / "thesis.docx").write_text("precious")
    before = _tree(dest)
    with pytest.raises(DataError, match=r"holds files cellkit did not write \(thesis.docx\)"):
        OutputFolder(dest, overwrite=True)
    assert _tree(dest) == before


def test_files_an_older_cellkit_wrote_are_recognised_by_pattern(tmp_path):
    dest = tmp_path / "report"
    dest.mkdir()
    (dest / "summary.json").write_text("{}")
    (dest / "montage_duplicates.png").write_bytes(b"png")
    _write(OutputFolder(dest, overwrite=True, owned=("summary.json", "montage_*.png")), **{"summary.json": "new"})
    assert sorted(p.name for p in dest.iterdir()) == [MANIFEST, "summary.json"]


def test_folder_checks_happen_before_the_work(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="exists and is not a folder"):
        OutputFolder(tmp_path / "file")
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    with pytest.raises(DataError, match="exists and is not empty"):
        OutputFolder(full)
    with pytest.raises(DataError, match="is not a folder, so it cannot hold the output"):
        OutputFolder(tmp_path / "file" / "out")
    data = tmp_path / "data"
    (data / "cls").mkdir(parents=True)
    for dest, what in ((data, "would overwrite the input"), (tmp_path, "holds the input"), (data / "cls" / "o", "lies inside")):
        with pytest.raises(DataError, match=what):
            OutputFolder(dest, inputs=[data], overwrite=True)


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root writes anywhere")
def test_read_only_parent_is_refused_up_front(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(DataError, match="not writable"):
            OutputFolder(ro / "out")
    finally:
        ro.chmod(0o700)


def test_file_group_publishes_together_or_not_at_all(tmp_path):
    a, b = tmp_path / "x.npz", tmp_path / "x.removed.csv"
    with atomic_file_group([a, b]) as (ta, tb):
        ta.write_text("a1")
        tb.write_text("b1")
    assert (a.read_text(), b.read_text()) == ("a1", "b1")
    with pytest.raises(RuntimeError), atomic_file_group([a, b]) as (ta, tb):
        ta.write_text("a2")
        raise RuntimeError("interrupted before the companion was written")
    assert (a.read_text(), b.read_text()) == ("a1", "b1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npz", "x.removed.csv"]


def test_file_group_killed_between_renames_leaves_no_mismatched_pair(tmp_path, monkeypatch):
    a, b = tmp_path / "x.npz", tmp_path / "x.removed.csv"
    a.write_text("old primary")
    b.write_text("old companion")
    real = os.replace
    calls = []

    def dies_after_the_first_rename(src, dst):
        if calls:
            raise KeyboardInterrupt  # stands for a kill between the two renames
        calls.append(dst)
        real(src, dst)

    monkeypatch.setattr(os, "replace", dies_after_the_first_rename)
    with pytest.raises(KeyboardInterrupt), atomic_file_group([a, b]) as (ta, tb):
        ta.write_text("new primary")
        tb.write_text("new companion")
    monkeypatch.undo()
    assert a.read_text() == "new primary" and not b.exists()  # a missing companion, never an old one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npz"]


# --------------------------------------------------------------------------- the commands


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory) -> Path:
    from cellkit.data import load, save_npz

    path = tmp_path_factory.mktemp("data") / "cells.npz"
    ds = load("sample")
    save_npz(ds.subset(np.arange(0, len(ds), 4)), path)
    return path


def test_clean_interrupted_before_the_companion_leaves_the_previous_pair(small_npz, tmp_path, monkeypatch):
    out = tmp_path / "clean.npz"
    assert main(["clean", str(small_npz), "--out", str(out), "--quiet"]) == 0
    before = _tree(tmp_path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("cellkit.cli.clean_cmd._removed_csv", interrupted)
    assert main(["clean", str(small_npz), "--out", str(out), "--quiet", "--remove", "duplicates"]) == 130
    assert _tree(tmp_path) == before


def test_inspect_report_folder_reused_holds_only_the_new_report(small_npz, tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    (report / "montage_old_kind.png").write_bytes(b"stale montage")
    assert main(["inspect", str(small_npz), "--report", str(report), "--quiet"]) == 0
    assert not (report / "montage_old_kind.png").exists()
    summary = json.loads((report / "summary.json").read_text())
    listed = json.loads((report / MANIFEST).read_text())["files"]
    assert sorted(p.name for p in report.iterdir() if p.name != MANIFEST) == listed
    assert "issues" in summary
    (report / "notes.txt").write_text("mine")
    assert main(["inspect", str(small_npz), "--report", str(report), "--quiet"]) == 2
    assert (report / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "argv",
    [
        ["clean", "{data}", "--out", "{data}"],
        ["clean", "{data}", "--out", "{tmp}"],
        ["corrupt", "{data}", "--out", "{data}"],
        ["inspect", "{data}", "--report", "{data}"],
        ["inspect", "{data}", "--report", "{tmp}"],
        ["split", "{data}", "--out", "{data}"],
        ["evaluate", "{tmp}/m.keras", "{data}", "--json", "{data}"],
        ["evaluate", "{tmp}/m.keras", "{data}", "--reliability", "{data}"],
        ["calibrate", "{tmp}/m.keras", "{data}", "--out", "{tmp}/m.keras"],
        ["calibrate", "{tmp}/m.keras", "{data}", "--out", "{tmp}"],
        ["predict", "{tmp}/m.keras", "{data}", "--out", "{tmp}/m.keras"],
        ["predict", "{tmp}/m.keras", "{tmp}", "--out", "{tmp}/predictions.csv"],
        ["ensemble", "{tmp}/m.keras", "{tmp}/m.keras", "--out", "{tmp}/m.keras"],
        ["export", "{tmp}/m.keras", "--out", "{tmp}", "--overwrite"],
    ],
    ids=lambda a: " ".join(a[:1] + a[-2:]),
)
def test_no_command_writes_over_or_around_its_input(argv, small_npz, tmp_path, capsys):
    data = tmp_path / "cells.npz"
    data.write_bytes(small_npz.read_bytes())
    (tmp_path / "m.keras").write_bytes(b"not opened: refused before")
    before = _tree(tmp_path)
    code = main([a.format(data=data, tmp=tmp_path) for a in argv] + ["--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    flag = [a for a in argv if a.startswith("--") and a != "--overwrite"][-1]
    assert flag in err and ("input" in err or "expected" in err), err
    assert _tree(tmp_path) == before
