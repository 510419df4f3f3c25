"""Training recipes: the seed report's whole method as one plain, serialisable configuration.

A :class:`Recipe` says what to build (backbone, head, normalisation and high-pass
layers), how to feed it (augmentation, mixing, class weights, batch size, split) and how
to train it: a sequence of :class:`Phase` objects, each with its own optimizer,
learning-rate schedule, epochs, early stopping and reduce-on-plateau. Recipes are frozen
dataclasses, validated on construction, and saved/loaded as TOML or JSON; an unknown key
or a bad value is refused with a :class:`RecipeError` naming the key (and the file).

Phases (``mode``)
    * ``"transfer"`` -- the report's two-phase transfer learning: ``transfer`` trains the
      head on a frozen backbone (Lion, learning rate 5e-4 -> 1e-5), then ``fine_tune``
      unfreezes the top ``fine_tune_fraction`` of the backbone's parameters (Lion,
      1e-4 -> 5e-6), batch-norm layers kept frozen.
    * ``"scratch"`` -- one phase training every layer from random initialisation (the
      report's simple CNNs and the compact backbone).
    * ``"auto"`` (default) -- ``"transfer"`` when ``weights`` is set (pretrained tag or
      file), ``"scratch"`` when ``weights`` is ``None``.

    Explicit ``phases`` replace the defaults of the mode. :meth:`Recipe.resolved` fills
    in the mode and the phases; a run saves the resolved recipe, so it is complete.

A learning-rate schedule decays from ``learning_rate`` to ``final_learning_rate`` over the
phase's steps (``"cosine"`` or ``"exponential"``); ``"constant"`` keeps ``learning_rate``
and is the only schedule that allows reduce-on-plateau (Keras cannot lower the learning
rate of a schedule, so that combination is refused here, before any training).

Example:
    >>> recipe = Recipe(backbone="convnext_tiny", weights="imagenet").resolved()
    >>> [(p.name, p.optimizer, p.learning_rate, p.final_learning_rate) for p in recipe.phases]
    [('transfer', 'lion', 0.0005, 1e-05), ('fine_tune', 'lion', 0.0001, 5e-06)]
    >>> try:
    ...     Recipe.from_dict({"backbone": "baseline", "optimiser": "lion"})
    ... except RecipeError as exc:
    ...     print(str(exc)[:62])
    unknown key 'optimiser' in the recipe: 'optimizer' is a key of
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import numbers
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellkit._io import atomic_write_text
from cellkit.errors import CellkitError
from cellkit.inference import TTA_SPECS

__all__ = [
    "AUGMENTATION_POLICIES",
    "MIX_METHODS",
    "NORMALIZATIONS",
    "OPTIMIZERS",
    "SCHEDULES",
    "TRAINABLE",
    "TTA_SPECS",
    "Phase",
    "Recipe",
    "RecipeError",
    "load_recipe",
    "scratch_phases",
    "transfer_phases",
]

#: Optimizer names a phase accepts (``keras.optimizers.Lion``, ``AdamW``, ``Adam``, ``SGD``).
OPTIMIZERS: tuple[str, ...] = ("lion", "adamw", "adam", "sgd")
#: Learning-rate schedules: decay from ``learning_rate`` to ``final_learning_rate``, or constant.
SCHEDULES: tuple[str, ...] = ("cosine", "exponential", "constant")
#: What a phase trains: the head on a frozen backbone, the top fraction of the backbone
#: plus the head, or every layer.
TRAINABLE: tuple[str, ...] = ("head", "fine_tune", "all")
#: Augmentation policies of :func:`cellkit.augment.augmentation_layer`.
AUGMENTATION_POLICIES: tuple[str, ...] = ("none", "light", "strong")
#: Batch mixing of :func:`cellkit.augment.mix_batch` (``"none"``: no mixing).
MIX_METHODS: tuple[str, ...] = ("none", "cutmix", "mixup")
MODES: tuple[str, ...] = ("auto", "transfer", "scratch")
#: Precision settings (:func:`cellkit.train.devices.precision_policy`).
PRECISIONS: tuple[str, ...] = ("auto", "mixed", "bfloat16", "float32")
CLASS_WEIGHT_MODES: tuple[str, ...] = ("balanced", "none")
#: Stain/illumination normalisation layers (:data:`cellkit.layers.NORMALIZATION_LAYERS`).
NORMALIZATIONS: tuple[str, ...] = ("reinhard", "grayworld", "macenko")


class RecipeError(CellkitError, ValueError):
    """A recipe with an unknown key or a bad value; ``path`` names the file when there is one."""

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


# --------------------------------------------------------------------------- validators


def _where(prefix: str, name: str) -> str:
    return f"{prefix}{name}" if prefix else name


def _check_int(value: Any, name: str, prefix: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise RecipeError(f"{_where(prefix, name)} must be an int >= {minimum}. Received: {name}={value!r}")
    return int(value)


def _check_float(
    value: Any, name: str, prefix: str, *, low: float = 0.0, high: float = math.inf, low_open: bool = True,
    high_open: bool = False,
) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        v = float(value)
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lo = "(" if low_open else "["
        hi = ")" if high_open or high == math.inf else "]"
        raise RecipeError(
            f"{_where(prefix, name)} must be a finite number in {lo}{low:g}, {high:g}{hi}. Received: {name}={value!r}"
        )
    return float(value)


def _check_choice(value: Any, name: str, prefix: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value.lower() not in choices:
        hint = ""
        if isinstance(value, str):
            close = difflib.get_close_matches(value.lower(), choices, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RecipeError(
            f"{_where(prefix, name)} must be one of {list(choices)}{hint}. Received: {name}={value!r}"
        )
    return value.lower()


def _check_str(value: Any, name: str, prefix: str, allow_none: bool = False) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value:
        raise RecipeError(f"{_where(prefix, name)} must be a non-empty string. Received: {name}={value!r}")
    return value


def _check_keys(data: Mapping[str, Any], cls: type, where: str) -> None:
    if not isinstance(data, Mapping):
        raise RecipeError(f"{where} must be a table (dict). Received: {data!r}")
    known = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in known:
            raise RecipeError(f"unknown key {key!r} in {where}{_hint(str(key), cls, known)}. "
                              f"Expected one of: {', '.join(known)}")


def _hint(key: str, cls: type, known: list[str]) -> str:
    """Point a misplaced phase key (``epochs`` at the top) to its table, else suggest a close key."""
    other = Phase if cls is Recipe else Recipe if cls is Phase else None
    if other is not None:
        other_keys = [f.name for f in dataclasses.fields(other)]
        close = difflib.get_close_matches(key, other_keys, n=1, cutoff=0.8)
        if close:
            table = "each [[phases]] table" if other is Phase else "the top level of the recipe"
            return f": {close[0]!r} is a key of {table}"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------- phase


@dataclass(frozen=True)
class Phase:
    """One ``fit`` of the recipe: what is trainable and how it is optimised.

    Attributes:
        name: a label used in the history and progress output (``"transfer"``, ...).
        trainable: ``"head"`` (backbone frozen), ``"fine_tune"`` (top
            ``Recipe.fine_tune_fraction`` of the backbone plus the head; batch norm frozen)
            or ``"all"``.
        epochs: maximum epochs of the phase (early stopping may end it sooner).
        optimizer: one of :data:`OPTIMIZERS`.
        learning_rate: initial learning rate.
        final_learning_rate: learning rate reached at the phase's last step for the
            ``"cosine"`` and ``"exponential"`` schedules; ``None`` means
            ``learning_rate / 100``. Ignored (must be ``None``) for ``"constant"``.
        schedule: one of :data:`SCHEDULES`.
        weight_decay: decoupled weight decay; ``None``: the optimizer's default
            (Lion and SGD: none; AdamW: 0.004).
        momentum: momentum of ``"sgd"`` (ignored by the others).
        early_stopping_patience: epochs without improvement of the validation loss before
            the phase stops (best weights restored); ``None`` (the default of a bare phase;
            the built-in phases set it) disables early stopping.
        reduce_lr_patience: epochs without improvement before the learning rate is
            multiplied by ``reduce_lr_factor``; ``None`` disables it. Needs
            ``schedule="constant"``.
        reduce_lr_factor: factor of reduce-on-plateau, in (0, 1).
        min_learning_rate: floor of reduce-on-plateau.
    """

    name: str
    trainable: str = "all"
    epochs: int = 30
    optimizer: str = "lion"
    learning_rate: float = 5e-4
    final_learning_rate: float | None = None
    schedule: str = "cosine"
    weight_decay: float | None = None
    momentum: float = 0.9
    early_stopping_patience: int | None = None
    reduce_lr_patience: int | None = None
    reduce_lr_factor: float = 0.5
    min_learning_rate: float = 1e-7

    def __post_init__(self) -> None:
        self._validate("")

    def _validate(self, prefix: str) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 - frozen dataclass
        set_("name", _check_str(self.name, "name", prefix))
        set_("trainable", _check_choice(self.trainable, "trainable", prefix, TRAINABLE))
        set_("epochs", _check_int(self.epochs, "epochs", prefix, 1))
        set_("optimizer", _check_choice(self.optimizer, "optimizer", prefix, OPTIMIZERS))
        set_("learning_rate", _check_float(self.learning_rate, "learning_rate", prefix, high=10.0))
        set_("schedule", _check_choice(self.schedule, "schedule", prefix, SCHEDULES))
        if self.final_learning_rate is not None:
            if self.schedule == "constant":
                raise RecipeError(
                    f"{_where(prefix, 'final_learning_rate')} is only used by the cosine and exponential "
                    "schedules; remove it or choose a decaying schedule. Received: "
                    f"schedule='constant', final_learning_rate={self.final_learning_rate!r}"
                )
            final = _check_float(self.final_learning_rate, "final_learning_rate", prefix, high=10.0)
            if final > self.learning_rate:
                raise RecipeError(
                    f"{_where(prefix, 'final_learning_rate')} must not exceed learning_rate (the schedules "
                    f"decay). Received: learning_rate={self.learning_rate!r}, final_learning_rate={final!r}"
                )
            set_("final_learning_rate", final)
        if self.weight_decay is not None:
            set_("weight_decay", _check_float(self.weight_decay, "weight_decay", prefix, low=0.0, low_open=False))
        set_("momentum", _check_float(self.momentum, "momentum", prefix, low=0.0, high=1.0, low_open=False,
                                      high_open=True))
        for key in ("early_stopping_patience", "reduce_lr_patience"):
            value = getattr(self, key)
            if value is not None:
                set_(key, _check_int(value, key, prefix, 0))
        set_("reduce_lr_factor", _check_float(self.reduce_lr_factor, "reduce_lr_factor", prefix, high=1.0,
                                              high_open=True))
        set_("min_learning_rate", _check_float(self.min_learning_rate, "min_learning_rate", prefix,
                                               low_open=False))
        if self.reduce_lr_patience is not None and self.schedule != "constant":
            raise RecipeError(
                f"{_where(prefix, 'reduce_lr_patience')} needs schedule='constant': Keras cannot lower the "
                "learning rate of a schedule (ReduceLROnPlateau refuses it). Use a constant schedule or "
                f"drop reduce_lr_patience. Received: schedule={self.schedule!r}, "
                f"reduce_lr_patience={self.reduce_lr_patience!r}"
            )

    @property
    def end_learning_rate(self) -> float:
        """The learning rate at the last step: ``final_learning_rate`` (or its default)."""
        if self.schedule == "constant":
            return self.learning_rate
        return self.final_learning_rate if self.final_learning_rate is not None else self.learning_rate / 100

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "[[phases]]") -> Phase:
        _check_keys(data, cls, where)
        if "name" not in data:
            raise RecipeError(f"{where} needs a 'name' (e.g. name = \"transfer\")")
        obj = cls.__new__(cls)
        defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
        for key, value in {**defaults, **data}.items():
            object.__setattr__(obj, key, value)
        obj._validate(f"{where}.")
        return obj


def transfer_phases(epochs: int = 30, patience: int = 5) -> tuple[Phase, Phase]:
    """The report's transfer learning: Lion 5e-4 -> 1e-5 on the head, then 1e-4 -> 5e-6 fine-tuning.

    Example:
        >>> [p.trainable for p in transfer_phases()]
        ['head', 'fine_tune']
    """
    return (
        Phase("transfer", "head", epochs, "lion", 5e-4, 1e-5, "cosine", early_stopping_patience=patience),
        Phase("fine_tune", "fine_tune", epochs, "lion", 1e-4, 5e-6, "cosine", early_stopping_patience=patience),
    )


def scratch_phases(epochs: int = 60, patience: int = 10) -> tuple[Phase]:
    """One phase training every layer from scratch: AdamW, cosine decay 1e-3 -> 1e-5.

    The report does not give the optimizer of its simple CNNs; AdamW with a cosine decay is
    the usual choice for training small networks from random initialisation (Lion, tuned
    for fine-tuning large pretrained networks, needs a learning rate 3-10x smaller).

    Example:
        >>> scratch_phases()[0].optimizer
        'adamw'
    """
    return (Phase("scratch", "all", epochs, "adamw", 1e-3, 1e-5, "cosine", early_stopping_patience=patience),)


# --------------------------------------------------------------------------- recipe


@dataclass(frozen=True)
class Recipe:
    """Everything needed to reproduce a training run (with the data and the seed).

    Attributes:
        backbone: a registered backbone name (``cellkit.zoo.list_backbones()``).
        weights: ``None`` (random initialisation), a pretrained tag such as ``"imagenet"``,
            or the path of a ``.weights.h5`` file (see :func:`cellkit.zoo.build_classifier`).
        backbone_options: the backbone builder's own keyword arguments (a table, e.g.
            ``{"resize_to": 160}`` for EfficientNet-Lite; see
            :func:`cellkit.zoo.check_backbone_options`).
        head: options of :class:`cellkit.zoo.HeadConfig` (default: the report's single
            dense layer of 64 units with batch norm and dropout, max pooling).
        high_pass: ``None`` or a high-pass layer name (``"laplacian"``, ``"sobel"``,
            ``"dog"``, ``"learnable"``) put before the backbone.
        normalize: ``None`` or a stain/illumination normalisation layer name
            (:data:`NORMALIZATIONS`: ``"reinhard"``, ``"grayworld"``, ``"macenko"``) applied to the raw image
            first (see :func:`cellkit.zoo.build_classifier`).
        augmentation: policy of :func:`cellkit.augment.augmentation_layer`
            (``"none"``, ``"light"``, ``"strong"``), applied only while training.
        mix: batch mixing (``"none"``, ``"cutmix"``, ``"mixup"``), applied only while training.
        mix_alpha: the Beta(alpha, alpha) parameter of the mixing ratio.
        mix_probability: share of the images of a batch that are mixed.
        class_weight: ``"balanced"`` (``n / (k * n_c)`` on the training split, as the
            report), ``"none"``, or one weight per class.
        label_smoothing: label smoothing of the categorical cross-entropy, in [0, 1).
        precise_bn: batches of clean (unaugmented) training images used to re-estimate the
            statistics of the trainable batch-norm layers before every validation and at the
            end (:mod:`cellkit.train.precise_bn`); 0 keeps the moving averages of training.
        tta: test-time augmentation built into the saved ``model.keras`` (one of
            :data:`TTA_SPECS`, see :mod:`cellkit.inference.tta`): the test metrics are those of the
            model with TTA, and ``metrics.json`` also records them without it.
        batch_size: images per training step.
        val, test: validation and test fractions of the stratified split (the report's
            8 % and 20 %).
        seed: seeds the split, the initialisation, the shuffling and the augmentation.
        precision: ``"auto"`` (mixed float16 when a GPU is present, else float32),
            ``"mixed"``, ``"bfloat16"`` (mixed bfloat16 where the hardware computes it
            natively, else float32) or ``"float32"``.
        mode: ``"auto"``, ``"transfer"`` or ``"scratch"`` (module docstring).
        fine_tune_fraction: fraction of the backbone's parameters unfrozen by
            ``trainable="fine_tune"`` phases (the report: 1 % to 30 %, best 1-10 %).
        fine_tune_batch_norm: those phases also train the batch-norm layers of the
            unfrozen span (default: kept frozen, see :func:`cellkit.zoo.fine_tune`).
        phases: explicit phases; empty: the defaults of the mode.
    """

    backbone: str = "baseline"
    weights: str | None = None
    backbone_options: Mapping[str, Any] = field(default_factory=dict)
    head: Mapping[str, Any] = field(default_factory=dict)
    high_pass: str | None = None
    normalize: str | None = None
    augmentation: str = "light"
    mix: str = "none"
    mix_alpha: float = 1.0
    mix_probability: float = 1.0
    class_weight: str | tuple[float, ...] = "balanced"
    label_smoothing: float = 0.0
    tta: str = "none"
    precise_bn: int = 0
    batch_size: int = 64
    val: float = 0.08
    test: float = 0.2
    seed: int = 0
    precision: str = "auto"
    mode: str = "auto"
    fine_tune_fraction: float = 0.1
    fine_tune_batch_norm: bool = False
    phases: tuple[Phase, ...] = ()

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 - frozen dataclass
        set_("backbone", _check_str(self.backbone, "backbone", ""))
        weights = self.weights
        if isinstance(weights, Path):
            weights = str(weights)
        set_("weights", _check_str(weights, "weights", "", allow_none=True))
        options = self.backbone_options
        if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
            raise RecipeError(f"backbone_options must be a table of the backbone's options. Received: {options!r}")
        set_("backbone_options", dict(options))
        if not isinstance(self.head, Mapping) or not all(isinstance(k, str) for k in self.head):
            raise RecipeError(f"head must be a table of HeadConfig options. Received: head={self.head!r}")
        set_("head", dict(self.head))
        set_("high_pass", _check_str(self.high_pass, "high_pass", "", allow_none=True))
        if self.normalize is not None:
            set_("normalize", _check_choice(self.normalize, "normalize", "", NORMALIZATIONS))
        set_("augmentation", _check_choice(self.augmentation, "augmentation", "", AUGMENTATION_POLICIES))
        set_("mix", _check_choice(self.mix, "mix", "", MIX_METHODS))
        set_("mix_alpha", _check_float(self.mix_alpha, "mix_alpha", "", high=100.0))
        set_("mix_probability", _check_float(self.mix_probability, "mix_probability", "", low=0.0, high=1.0,
                                             low_open=False))
        set_("class_weight", _check_class_weight(self.class_weight))
        set_("label_smoothing", _check_float(self.label_smoothing, "label_smoothing", "", low=0.0, high=1.0,
                                             low_open=False, high_open=True))
        set_("tta", _check_choice(self.tta, "tta", "", TTA_SPECS))
        set_("precise_bn", _check_int(self.precise_bn, "precise_bn", "", 0))
        set_("batch_size", _check_int(self.batch_size, "batch_size", "", 1))
        set_("val", _check_float(self.val, "val", "", low=0.0, high=1.0, low_open=False, high_open=True))
        set_("test", _check_float(self.test, "test", "", low=0.0, high=1.0, low_open=False, high_open=True))
        if self.val + self.test >= 1.0:
            raise RecipeError(f"val + test must leave training images (< 1). Received: val={self.val}, test={self.test}")
        set_("seed", _check_int(self.seed, "seed", "", 0))
        set_("precision", _check_choice(self.precision, "precision", "", PRECISIONS))
        set_("mode", _check_choice(self.mode, "mode", "", MODES))
        set_("fine_tune_fraction", _check_float(self.fine_tune_fraction, "fine_tune_fraction", "", high=1.0))
        if not isinstance(self.fine_tune_batch_norm, bool):
            raise RecipeError("fine_tune_batch_norm must be true or false. "
                              f"Received: fine_tune_batch_norm={self.fine_tune_batch_norm!r}")
        phases = self.phases
        if isinstance(phases, Phase) or not isinstance(phases, Sequence):
            raise RecipeError(f"phases must be a list of phases. Received: phases={phases!r}")
        phases = tuple(phases)
        for i, p in enumerate(phases):
            if not isinstance(p, Phase):
                raise RecipeError(f"phases[{i}] must be a Phase. Received: {p!r}")
        names = [p.name for p in phases]
        if len(set(names)) != len(names):
            raise RecipeError(f"phase names must be unique. Received: names={names}")
        set_("phases", phases)
        if self.weights is None:
            for i, p in enumerate(phases):
                if p.trainable in ("head", "fine_tune"):
                    raise RecipeError(
                        f"phases[{i}] ({p.name!r}) has trainable={p.trainable!r}, which freezes the backbone, "
                        "but weights=None leaves the backbone random. Set weights (e.g. 'imagenet') or use "
                        "trainable='all'."
                    )
            if self.mode == "transfer" and not phases:
                raise RecipeError("mode='transfer' needs pretrained weights. Received: weights=None")

    # ------------------------------------------------------------------ derived

    @property
    def resolved_mode(self) -> str:
        """``"transfer"`` or ``"scratch"`` (``"auto"`` decided by ``weights``)."""
        if self.mode != "auto":
            return self.mode
        return "scratch" if self.weights is None else "transfer"

    def resolved(self) -> Recipe:
        """This recipe with ``mode`` decided and the default ``phases`` filled in."""
        mode = self.resolved_mode
        phases = self.phases or (transfer_phases() if mode == "transfer" else scratch_phases())
        return dataclasses.replace(self, mode=mode, phases=phases)

    def replace(self, **changes: Any) -> Recipe:
        """A copy with ``changes`` applied (validated like a new recipe)."""
        _check_keys(changes, Recipe, "Recipe.replace()")
        return dataclasses.replace(self, **changes)

    def with_epochs(self, epochs: int) -> Recipe:
        """The resolved recipe with every phase's ``epochs`` set to ``epochs`` (the CLI's ``--epochs``)."""
        epochs = _check_int(epochs, "epochs", "", 1)
        base = self.resolved()
        return dataclasses.replace(base, phases=tuple(dataclasses.replace(p, epochs=epochs) for p in base.phases))

    @property
    def total_epochs(self) -> int:
        """Maximum epochs over all (resolved) phases."""
        return sum(p.epochs for p in self.resolved().phases)

    def check_components(self, input_shape: Sequence[int] | None = None) -> None:
        """Check the names the zoo resolves: backbone, weights, head, high-pass layer (and input shape).

        :func:`cellkit.train.train` calls this before writing anything, so a misspelt
        backbone fails at once instead of after the data is split. Needs Keras (the zoo).

        Raises:
            RecipeError: naming the key, with the zoo's explanation (close matches, available
                weights, ...).
        """
        from cellkit.zoo import HeadConfig, check_backbone_options, get_backbone
        from cellkit.zoo.weights import check_weights

        try:
            spec = get_backbone(self.backbone)
        except ValueError as exc:
            raise RecipeError(f"backbone: {exc}") from None
        try:
            check_weights(spec, self.weights)
        except (ValueError, FileNotFoundError) as exc:
            raise RecipeError(f"weights: {exc}") from None
        try:
            check_backbone_options(spec, self.backbone_options)
        except ValueError as exc:
            raise RecipeError(f"backbone_options: {exc}") from None
        try:
            HeadConfig.from_value(self.head)
        except (ValueError, TypeError) as exc:
            raise RecipeError(f"head: {exc}") from None
        if self.high_pass is not None:
            from cellkit.layers import high_pass_layer

            try:
                high_pass_layer(self.high_pass)
            except ValueError as exc:
                raise RecipeError(f"high_pass: {exc}") from None
        if input_shape is not None:
            try:
                spec.check_input_shape(tuple(input_shape))
            except ValueError as exc:
                raise RecipeError(f"backbone: {exc}") from None

    # ------------------------------------------------------------------ (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``None`` values kept; :meth:`from_dict` reads it back)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "phases":
                value = [p.to_dict() for p in value]
            elif f.name in ("head", "backbone_options"):
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str | os.PathLike[str] | None = None) -> Recipe:
        """Build a recipe from a dict; errors name the key (and ``path`` when given)."""
        try:
            _check_keys(data, cls, "the recipe")
            values = dict(data)
            raw_phases = values.pop("phases", [])
            if isinstance(raw_phases, Mapping) or not isinstance(raw_phases, (list, tuple)):
                raise RecipeError(
                    f"phases must be a list of tables ([[phases]] in TOML). Received: phases={raw_phases!r}"
                )
            phases = tuple(
                p if isinstance(p, Phase) else Phase.from_dict(p, f"phases[{i}]") for i, p in enumerate(raw_phases)
            )
            if isinstance(values.get("class_weight"), list):
                values["class_weight"] = tuple(values["class_weight"])
            return cls(**values, phases=phases)
        except RecipeError as exc:
            if path is None:
                raise
            raise RecipeError(exc.reason, path=path) from None

    def to_toml(self) -> str:
        """The recipe as TOML text (``None`` values are omitted: they are the defaults)."""
        return _to_toml(self.to_dict())

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the recipe atomically as TOML (``.toml``) or JSON (any other suffix)."""
        dest = Path(path)
        if dest.suffix.lower() == ".toml":
            atomic_write_text(dest, self.to_toml())
        else:
            atomic_write_text(dest, json.dumps(self.to_dict(), indent=2) + "\n")
        return dest

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recipe:
        """Read a recipe from a ``.toml`` or ``.json`` file (see :func:`load_recipe`)."""
        return load_recipe(path)


def _check_class_weight(value: Any) -> str | tuple[float, ...]:
    if isinstance(value, str):
        return _check_choice(value, "class_weight", "", CLASS_WEIGHT_MODES)
    if isinstance(value, (list, tuple)) and value:
        out = []
        for i, w in enumerate(value):
            out.append(_check_float(w, f"class_weight[{i}]", "", low=0.0, low_open=False))
        if not any(out):
            raise RecipeError(f"class_weight must have a positive entry. Received: class_weight={list(value)!r}")
        return tuple(out)
    raise RecipeError(
        "class_weight must be 'balanced', 'none' or a list of one non-negative weight per class. "
        f"Received: class_weight={value!r}"
    )


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read a recipe from TOML (``.toml``) or JSON (``.json``); errors name the file and the key.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.toml"
        >>> _ = p.write_text('backbone = "compact_resnet"\\n[[phases]]\\nname = "scratch"\\nepochs = 2\\n')
        >>> load_recipe(p).phases[0].epochs
        2
    """
    path = Path(path)
    if not path.is_file():
        raise RecipeError("no such recipe file (expected a .toml or .json file)", path=path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = _toml_loads(path.read_text(encoding="utf-8"))
        elif suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            raise RecipeError(f"a recipe is a .toml or .json file. Received: suffix={path.suffix!r}", path=path)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, RecipeError):
            raise
        raise RecipeError(f"not a valid {suffix[1:].upper()} file: {exc}", path=path) from None
    if not isinstance(data, dict):
        raise RecipeError(f"a recipe must be a table (dict) at the top level. Received: {type(data).__name__}",
                          path=path)
    return Recipe.from_dict(data, path=path)


def _toml_loads(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise RecipeError("reading TOML on Python 3.10 needs the 'tomli' package; use a .json recipe") from None
    return tomllib.loads(text)


# --------------------------------------------------------------------------- TOML writer


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() and key.isascii() else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"TOML recipes hold finite numbers only. Received: {v!r}")
        text = repr(v)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, Mapping):
        items = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML: {value!r}")


def _to_toml(data: Mapping[str, Any]) -> str:
    lines = ["# cellkit training recipe (cellkit.train.Recipe); None values are omitted (they are the defaults)"]
    tables: list[tuple[str, Mapping[str, Any]]] = []
    arrays: list[tuple[str, list[Mapping[str, Any]]]] = []
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            arrays.append((key, value))
        elif isinstance(value, list) and not value and key == "phases":
            continue
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, table in tables:
        lines += ["", f"[{_toml_key(key)}]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    for key, items in arrays:
        for item in items:
            lines += ["", f"[[{_toml_key(key)}]]"]
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in item.items() if v is not None]
    return "\n".join(lines) + "\n"
