"""The README's Python path runs as written: load, find issues, clean, split, train, evaluate, predict, explain.

The block is read from README.md and executed in a temporary folder; the only changes are
the preset's training, cut to one epoch, and the data, every third image of the sample (the
test proves the path, not the accuracy; CI's time is counted).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRESET_LINE = 'recipe = cellkit.load_preset("compact")'
LOAD_LINE = 'ds = cellkit.load("sample")'
A_THIRD = 'ds = cellkit.load("sample"); ds = ds.subset(list(range(0, len(ds), 3)))'
ONE_EPOCH = ('recipe = cellkit.load_preset("compact").replace(phases=(cellkit.Phase("scratch", epochs=1, '
             'optimizer="adamw", learning_rate=2e-3),), tta="none")')


def readme_python_block() -> str:
    readme = REPO / "README.md"
    if not readme.is_file():
        pytest.skip("README.md is not in this checkout")
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), flags=re.S)
    path = [b for b in blocks if "cellkit.train(" in b and "cellkit.explain_dataset(" in b]
    assert len(path) == 1, "README.md must hold one Python block from load to explain"
    return path[0]


def test_the_readme_python_path_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    code = readme_python_block()
    steps = ["cellkit.load(", "cellkit.find_issues(", ".subset(~report.issue_mask(", "cellkit.stratified_split(",
             "cellkit.train(", "cellkit.evaluate_model(", "cellkit.predict(", "cellkit.explain_dataset("]
    positions = [code.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), "the README path keeps the command line's order"
    assert PRESET_LINE in code and LOAD_LINE in code
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code.replace(PRESET_LINE, ONE_EPOCH).replace(LOAD_LINE, A_THIRD), "README.md", "exec"), namespace)  # noqa: S102

    accuracy, auc, log_loss, ece = (float(v) for v in capsys.readouterr().out.split()[-4:])
    assert 0 <= accuracy <= 1 and 0 <= auc <= 1 and log_loss > 0 and 0 <= ece <= 1
    assert (tmp_path / "runs" / "compact" / "model.keras").is_file()
    with (tmp_path / "predictions.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    test = namespace["test"]
    assert [r["id"] for r in rows] == list(test.ids) and {r["predicted"] for r in rows} <= set(test.class_names)
    assert "trust" in rows[0] and "is_superposition_issue" in rows[0]
    assert sorted(p.name for p in (tmp_path / "explained").glob("*.png")), "explain wrote no montage"
