"""Training recipes: the seed report's whole method as one plain, serialisable configuration.

A :class:`Recipe` says what to build (backbone, head, normalisation and high-pass
layers), how to feed it (augmentation, mixing, class weights, batch size, split) and how
to train it: a sequence of :class:`Phase` objects, each with its own optimizer,
learning-rate schedule, epochs, early stopping and reduce-on-plateau. Recipes are frozen
dataclasses whose fields carry their own rule (:func:`cellkit._validation.rule`), checked on
construction; an unknown key or a bad value is refused with a :class:`RecipeError` naming
the key. :mod:`cellkit.train.recipe_io` reads and writes them as TOML or JSON (errors then
name the file too).

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
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellkit._validation import (
    check_bool,
    check_choice,
    check_fields,
    check_float,
    check_int,
    check_str,
    check_table,
    rule,
)
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
#: Augmentation policies of :func:`cellkit.augment.augmentation_layer` (a test checks both lists agree).
AUGMENTATION_POLICIES: tuple[str, ...] = ("none", "light", "strong", "severe", "extreme")
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


# --------------------------------------------------------------------------- field rules


def _check_class_weight(value: Any, name: str, *, label: str, error: type[Exception]) -> str | tuple[float, ...]:
    if isinstance(value, str):
        return check_choice(value, name, CLASS_WEIGHT_MODES, label=label, error=error)
    if isinstance(value, (list, tuple)) and value:
        out = tuple(check_float(w, f"{name}[{i}]", low_open=False, error=error) for i, w in enumerate(value))
        if not any(out):
            raise error(f"{label} must have a positive entry. Received: {name}={list(value)!r}")
        return out
    raise error(f"{label} must be 'balanced', 'none' or a list of one non-negative weight per class. "
                f"Received: {name}={value!r}")


def _check_phases(value: Any, name: str, *, label: str, error: type[Exception]) -> tuple[Phase, ...]:
    if isinstance(value, Phase) or not isinstance(value, Sequence):
        raise error(f"{label} must be a list of phases. Received: {name}={value!r}")
    for i, p in enumerate(value):
        if not isinstance(p, Phase):
            raise error(f"{label}[{i}] must be a Phase. Received: {p!r}")
    names = [p.name for p in value]
    if len(set(names)) != len(names):
        raise error(f"phase names must be unique. Received: names={names}")
    return tuple(value)


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

    name: str = field(metadata=rule(check_str))
    trainable: str = field(default="all", metadata=rule(check_choice, choices=TRAINABLE))
    epochs: int = field(default=30, metadata=rule(check_int, minimum=1))
    optimizer: str = field(default="lion", metadata=rule(check_choice, choices=OPTIMIZERS))
    learning_rate: float = field(default=5e-4, metadata=rule(check_float, high=10.0))
    final_learning_rate: float | None = field(default=None, metadata=rule(check_float, high=10.0))
    schedule: str = field(default="cosine", metadata=rule(check_choice, choices=SCHEDULES))
    weight_decay: float | None = field(default=None, metadata=rule(check_float, low_open=False))
    momentum: float = field(default=0.9, metadata=rule(check_float, high=1.0, low_open=False, high_open=True))
    early_stopping_patience: int | None = field(default=None, metadata=rule(check_int, minimum=0))
    reduce_lr_patience: int | None = field(default=None, metadata=rule(check_int, minimum=0))
    reduce_lr_factor: float = field(default=0.5, metadata=rule(check_float, high=1.0, high_open=True))
    min_learning_rate: float = field(default=1e-7, metadata=rule(check_float, low_open=False))

    def __post_init__(self) -> None:
        self._validate("")

    def _validate(self, prefix: str) -> None:
        check_fields(self, prefix=prefix, error=RecipeError)
        final = self.final_learning_rate
        if final is not None and self.schedule == "constant":
            raise RecipeError(
                f"{prefix}final_learning_rate is only used by the cosine and exponential schedules; remove it "
                f"or choose a decaying schedule. Received: schedule='constant', final_learning_rate={final!r}"
            )
        if final is not None and final > self.learning_rate:
            raise RecipeError(
                f"{prefix}final_learning_rate must not exceed learning_rate (the schedules decay). "
                f"Received: learning_rate={self.learning_rate!r}, final_learning_rate={final!r}"
            )
        if self.reduce_lr_patience is not None and self.schedule != "constant":
            raise RecipeError(
                f"{prefix}reduce_lr_patience needs schedule='constant': Keras cannot lower the learning rate "
                "of a schedule (ReduceLROnPlateau refuses it). Use a constant schedule or drop "
                f"reduce_lr_patience. Received: schedule={self.schedule!r}, "
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
            (``"none"``, ``"light"``, ``"strong"``, ``"severe"``), applied only while training.
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
        time_limit: wall-clock budget of the training in minutes (``None``: none), for a
            preset sized to a budget: no epoch starts that would end past it, and the run
            keeps its best epoch (``train(time_limit=...)`` and ``--time-limit`` override it).
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

    backbone: str = field(default="baseline", metadata=rule(check_str))
    weights: str | None = field(default=None, metadata=rule(check_str))
    backbone_options: Mapping[str, Any] = field(default_factory=dict,
                                                metadata=rule(check_table, of="the backbone's options"))
    head: Mapping[str, Any] = field(default_factory=dict, metadata=rule(check_table, of="HeadConfig options"))
    high_pass: str | None = field(default=None, metadata=rule(check_str))
    normalize: str | None = field(default=None, metadata=rule(check_choice, choices=NORMALIZATIONS))
    augmentation: str = field(default="light", metadata=rule(check_choice, choices=AUGMENTATION_POLICIES))
    mix: str = field(default="none", metadata=rule(check_choice, choices=MIX_METHODS))
    mix_alpha: float = field(default=1.0, metadata=rule(check_float, high=100.0))
    mix_probability: float = field(default=1.0, metadata=rule(check_float, high=1.0, low_open=False))
    class_weight: str | tuple[float, ...] = field(default="balanced", metadata=rule(_check_class_weight))
    label_smoothing: float = field(default=0.0, metadata=rule(check_float, high=1.0, low_open=False, high_open=True))
    tta: str = field(default="none", metadata=rule(check_choice, choices=TTA_SPECS))
    precise_bn: int = field(default=0, metadata=rule(check_int, minimum=0))
    batch_size: int = field(default=64, metadata=rule(check_int, minimum=1))
    val: float = field(default=0.08, metadata=rule(check_float, high=1.0, low_open=False, high_open=True))
    test: float = field(default=0.2, metadata=rule(check_float, high=1.0, low_open=False, high_open=True))
    seed: int = field(default=0, metadata=rule(check_int, minimum=0))
    time_limit: float | None = field(default=None, metadata=rule(check_float))
    precision: str = field(default="auto", metadata=rule(check_choice, choices=PRECISIONS))
    mode: str = field(default="auto", metadata=rule(check_choice, choices=MODES))
    fine_tune_fraction: float = field(default=0.1, metadata=rule(check_float, high=1.0))
    fine_tune_batch_norm: bool = field(default=False, metadata=rule(check_bool))
    phases: tuple[Phase, ...] = field(default=(), metadata=rule(_check_phases))

    def __post_init__(self) -> None:
        if isinstance(self.weights, Path):
            object.__setattr__(self, "weights", str(self.weights))
        check_fields(self, prefix="", error=RecipeError)
        if self.val + self.test >= 1.0:
            raise RecipeError(f"val + test must leave training images (< 1). Received: val={self.val}, test={self.test}")
        if self.weights is None:
            for i, p in enumerate(self.phases):
                if p.trainable in ("head", "fine_tune"):
                    raise RecipeError(
                        f"phases[{i}] ({p.name!r}) has trainable={p.trainable!r}, which freezes the backbone, "
                        "but weights=None leaves the backbone random. Set weights (e.g. 'imagenet') or use "
                        "trainable='all'."
                    )
            if self.mode == "transfer" and not self.phases:
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
        epochs = check_int(epochs, "epochs", minimum=1, error=RecipeError)
        base = self.resolved()
        return dataclasses.replace(base, phases=tuple(dataclasses.replace(p, epochs=epochs) for p in base.phases))

    @property
    def total_epochs(self) -> int:
        """Maximum epochs over all (resolved) phases."""
        return sum(p.epochs for p in self.resolved().phases)

    def check_components(self, input_shape: Sequence[int] | None = None) -> None:
        """Check the names the zoo resolves: backbone, weights, head, high-pass layer (and input shape).

        :func:`cellkit.train.train` calls this before writing anything, so a misspelt
        backbone fails at once instead of after the data is split. Needs Keras (the zoo,
        imported here only: the schema itself stays free of it).

        Raises:
            RecipeError: naming the key, with the zoo's explanation (close matches, available
                weights, ...).
        """
        from cellkit.layers import high_pass_layer
        from cellkit.zoo import HeadConfig, check_backbone_options, get_backbone
        from cellkit.zoo.weights import check_weights

        def check(key: str, errors: tuple[type[Exception], ...], call: Callable[[], Any]) -> Any:
            try:
                return call()
            except errors as exc:
                raise RecipeError(f"{key}: {exc}") from None

        spec = check("backbone", (ValueError,), lambda: get_backbone(self.backbone))
        check("weights", (ValueError, FileNotFoundError), lambda: check_weights(spec, self.weights))
        check("backbone_options", (ValueError,), lambda: check_backbone_options(spec, self.backbone_options))
        check("head", (ValueError, TypeError), lambda: HeadConfig.from_value(self.head))
        if self.high_pass is not None:
            check("high_pass", (ValueError,), lambda: high_pass_layer(self.high_pass))
        if input_shape is not None:
            check("backbone", (ValueError,), lambda: spec.check_input_shape(tuple(input_shape)))

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
        from cellkit.train.recipe_io import recipe_to_toml

        return recipe_to_toml(self)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the recipe atomically as TOML (``.toml``) or JSON (any other suffix)."""
        from cellkit.train.recipe_io import save_recipe

        return save_recipe(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recipe:
        """Read a recipe from a ``.toml`` or ``.json`` file (see :func:`cellkit.train.load_recipe`)."""
        from cellkit.train.recipe_io import load_recipe

        return load_recipe(path)
