"""Calibration of the compact model on pbc96: test ECE before and after temperature scaling (``--full`` only).

The ``compact`` preset's kept run (the training benchmark's reproduction: stratified
72/8/20 split, seed 0, 30-minute budget; the ``trained_run`` fixture reuses
``benchmarks/.runs/compact`` or trains it) is calibrated the way ``cellkit calibrate`` does
it: one temperature fitted on the validation split's predictions (minimum NLL,
:func:`cellkit.evaluate.fit_temperature`), then the expected calibration error (15
equal-width bins) and the log-loss are measured on the test split before and after. Two
rows: the saved ``model.keras`` (inside the preset's d4 test-time augmentation) and the bare
classifier (``best.keras``, no TTA). Accuracy is unchanged by construction (the arg-max does
not move) and is checked.

Asserted: the temperature does not make the test ECE worse (``ece_after <= ece_before +
0.005``) and keeps every test prediction. No ECE target is asserted: the figures are
recorded in ``calibration.md``, whatever they are::

    python -m pytest benchmarks/test_bench_calibration.py --full   # writes docs/results/calibration.md
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import cellkit
from cellkit._io import atomic_write_text

#: (preset, kept-run name, training budget in minutes): the training benchmark's reproduction.
COMPACT = ("compact", "compact", 30)
ECE_SLACK = 0.005
_ROWS: dict[str, str] = {}


@pytest.fixture(scope="module")
def report(results_dir: Path, hardware: str, full_mode: bool, record_rows) -> Iterator[None]:
    """Write ``calibration.md`` once the benchmarks of this module have run (rows of earlier runs kept)."""
    yield
    rows = record_rows("calibration", "compact", _ROWS)
    if not rows:
        return
    lines = [
        "# Calibration: temperature scaling of the compact model",
        "",
        f"Hardware of this run: {hardware}. Mode: {'full' if full_mode else 'quick'}. Regenerate: "
        "`python -m pytest benchmarks/test_bench_calibration.py --full`.",
        "",
        "pbc96, the report's split (stratified 72/8/20, seed 0); the `compact` preset's kept run "
        "(`benchmarks/.runs/compact`). Temperature fitted on the validation split (minimum NLL); "
        "ECE: 15 equal-width bins of the top probability; both measured on the test split.",
        "",
        "| model | val images | temperature | test images | test accuracy | ECE before | ECE after "
        "| log-loss before | log-loss after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows.values(),
        "",
    ]
    atomic_write_text(results_dir / "calibration.md", "\n".join(lines))


@pytest.mark.full
@pytest.mark.parametrize("which", ["model.keras", "best.keras"])
def test_compact_model_test_ece_before_and_after_temperature(report, which: str, pbc96_path: Path,
                                                            trained_run) -> None:
    from cellkit.evaluate import calibration_metrics, fit_temperature
    from cellkit.inference import apply_temperature, load_model, predict_proba
    from cellkit.train import load_preset

    preset, name, minutes = COMPACT
    data = cellkit.load(pbc96_path)
    recipe = load_preset(preset).replace(seed=0, val=0.08, test=0.2)
    result = trained_run(name, data, recipe, minutes)
    model = load_model(result.run_dir / which)
    split = result.split
    val = predict_proba(model, data.images, split.val)
    test = predict_proba(model, data.images, split.test)
    fit = fit_temperature(val, data.labels[split.val])
    measured = calibration_metrics(test, data.labels[split.test], fit.temperature, fit.from_logits)
    after = apply_temperature(test, fit.temperature, fit.from_logits)
    assert (after.argmax(1) == test.argmax(1)).all()
    accuracy = float((test.argmax(1) == data.labels[split.test]).mean())
    label = f"{which} ({'d4 TTA' if which == 'model.keras' else 'no TTA'})"
    _ROWS[which] = (
        f"| {label} | {fit.images} | {fit.temperature:.3f} | {measured['images']} | {accuracy:.4f} "
        f"| {measured['ece_before']:.4f} | {measured['ece_after']:.4f} | {measured['log_loss_before']:.4f} "
        f"| {measured['log_loss_after']:.4f} |"
    )
    if which == "model.keras" and "temperature" in result.metrics:  # what the run recorded itself
        assert result.metrics["ece_before"] == pytest.approx(measured["ece_before"], abs=1e-4)
        assert result.metrics["temperature"] == pytest.approx(fit.temperature, rel=1e-3)
    assert measured["ece_after"] <= measured["ece_before"] + ECE_SLACK, (
        f"temperature {fit.temperature:.3f} raised the test ECE from {measured['ece_before']:.4f} "
        f"to {measured['ece_after']:.4f}")
    assert np.isfinite(fit.temperature)
