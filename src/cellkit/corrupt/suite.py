"""The microscopy corruption suite: a registry of seeded corruptions with five severities.

Every corruption is a pure function ``fn(images, severity=3, rng=None) -> images`` on a
``uint8`` batch ``(n, h, w, 3)``: the output is a new array of the same shape and dtype,
the input is never modified, and a seed (or ``numpy.random.Generator``) makes it
reproducible. Severities run from 1 (mild) to 5 (severe); with a fixed seed a higher
severity moves each image further from the original.

The honest protocol
    Robustness is reported on corruptions *held out* from training-time augmentation,
    otherwise it only measures what the model was shown. The corruptions are grouped in
    families (:data:`FAMILIES`) and the families split in two:

    * :data:`AUGMENTATION_FAMILIES` - what ``cellkit.augment``'s policies may simulate:
      brightness, contrast, colour (saturation, hue, colour cast), geometric shifts,
      Gaussian noise, Gaussian blur and occlusion (random erasing);
    * :data:`EVALUATION_FAMILIES` - held out, for :func:`cellkit.evaluate.robustness.evaluate_robustness`:
      stain jitter (HED), defocus blur, motion blur, JPEG compression, pixelation, ink
      deposits and bubbles.

    Caveat: Gaussian blur (trained) and defocus blur (held out) are both low-pass filters,
    and colour jitter (trained) and stain jitter (held out) both move colours; transfer
    between them is part of what the evaluation measures, not a leak of the test corruption
    itself (the kernels and colour models differ). Likewise random erasing (trained) and
    the slide artefacts (held out) both hide part of a cell, but an erased rectangle of
    uniform noise is neither a soft dark deposit nor a refracting bubble, and the chroma blur
    of the ``strong`` policy (trained) loses colour detail as JPEG (held out) does, without
    its block quantisation. ``docs/corruptions.md`` documents it all.

Example:
    >>> import numpy as np
    >>> from cellkit.corrupt.suite import corrupt, list_corruptions
    >>> x = np.full((2, 96, 96, 3), 180, np.uint8)
    >>> corrupt(x, "gaussian_noise", severity=2, seed=0).shape
    (2, 96, 96, 3)
    >>> "bubbles" in list_corruptions("evaluation")
    True
"""

from __future__ import annotations

import difflib
import zlib
from collections.abc import Callable

import numpy as np

from cellkit._random import as_generator
from cellkit.corrupt import artefacts, blur_noise, geometric, occlusion, photometric
from cellkit.corrupt._batch import SEVERITIES, check_batch, check_severity

__all__ = [
    "AUGMENTATION_FAMILIES",
    "CORRUPTIONS",
    "EVALUATION_FAMILIES",
    "FAMILIES",
    "FAMILY_OF",
    "SEVERITIES",
    "SEVERITY_PARAMETERS",
    "CorruptionFn",
    "corrupt",
    "corruption_seed",
    "list_corruptions",
    "resolve_corruptions",
]

#: ``fn(images, severity, rng) -> images``.
CorruptionFn = Callable[..., np.ndarray]

#: Every corruption, by name.
CORRUPTIONS: dict[str, CorruptionFn] = {
    "brightness_up": photometric.brightness_up,
    "brightness_down": photometric.brightness_down,
    "contrast_up": photometric.contrast_up,
    "contrast_down": photometric.contrast_down,
    "saturation_up": photometric.saturation_up,
    "saturation_down": photometric.saturation_down,
    "hue_shift": photometric.hue_shift,
    "color_cast": photometric.color_cast,
    "stain_jitter": photometric.stain_jitter,
    "gaussian_blur": blur_noise.gaussian_blur,
    "defocus_blur": blur_noise.defocus_blur,
    "motion_blur": blur_noise.motion_blur,
    "gaussian_noise": blur_noise.gaussian_noise,
    "jpeg_compression": blur_noise.jpeg_compression,
    "pixelate": blur_noise.pixelate,
    "ink_deposits": artefacts.ink_deposits,
    "opaque_blots": artefacts.opaque_blots,
    "bubbles": artefacts.bubbles,
    "random_erasing": occlusion.random_erasing,
    "dihedral": geometric.dihedral,
    "rotate": geometric.rotate,
    "translate": geometric.translate,
    "zoom": geometric.zoom,
}

#: The parameter each severity 1..5 sets, for the documentation and the gallery.
SEVERITY_PARAMETERS: dict[str, tuple[str, tuple]] = {
    "brightness_up": ("gain", photometric.BRIGHTNESS_UP_GAINS),
    "brightness_down": ("gain", photometric.BRIGHTNESS_DOWN_GAINS),
    "contrast_up": ("factor", photometric.CONTRAST_UP_FACTORS),
    "contrast_down": ("factor", photometric.CONTRAST_DOWN_FACTORS),
    "saturation_up": ("factor", photometric.SATURATION_UP_FACTORS),
    "saturation_down": ("factor", photometric.SATURATION_DOWN_FACTORS),
    "hue_shift": ("degrees (random sign)", photometric.HUE_SHIFT_DEGREES),
    "color_cast": ("gain spread", photometric.COLOR_CAST_STRENGTHS),
    "stain_jitter": ("OD scale sigma", photometric.STAIN_SIGMAS),
    "gaussian_blur": ("sigma (px)", blur_noise.GAUSSIAN_BLUR_SIGMAS),
    "defocus_blur": ("disk radius (px)", blur_noise.DEFOCUS_RADII),
    "motion_blur": ("length (px)", blur_noise.MOTION_LENGTHS),
    "gaussian_noise": ("sigma (grey levels)", blur_noise.NOISE_SIGMAS),
    "jpeg_compression": ("quality", blur_noise.JPEG_QUALITIES),
    "pixelate": ("block (px)", blur_noise.PIXELATE_BLOCKS),
    "ink_deposits": ("deposits", artefacts.INK_COUNTS),
    "opaque_blots": ("share of the cell covered", artefacts.BLOT_COVERAGE),
    "bubbles": ("bubbles", artefacts.BUBBLE_COUNTS),
    "random_erasing": ("area share", occlusion.ERASING_AREAS),
    "dihedral": ("(none)", (0, 0, 0, 0, 0)),
    "rotate": ("degrees (random sign)", geometric.ROTATE_DEGREES),
    "translate": ("pixels per 96", geometric.TRANSLATE_PIXELS),
    "zoom": ("factor (in or out)", geometric.ZOOM_FACTORS),
}

#: Families of related corruptions.
FAMILIES: dict[str, tuple[str, ...]] = {
    "brightness": ("brightness_up", "brightness_down"),
    "contrast": ("contrast_up", "contrast_down"),
    "colour": ("saturation_up", "saturation_down", "hue_shift", "color_cast"),
    "geometric": ("dihedral", "rotate", "translate", "zoom"),
    "noise": ("gaussian_noise",),
    "gaussian_blur": ("gaussian_blur",),
    "occlusion": ("random_erasing",),
    "stain": ("stain_jitter",),
    "defocus": ("defocus_blur",),
    "motion": ("motion_blur",),
    "compression": ("jpeg_compression",),
    "pixelation": ("pixelate",),
    "deposits": ("ink_deposits",),
    "blots": ("opaque_blots",),
    "bubbles": ("bubbles",),
}

#: The family of each corruption.
FAMILY_OF: dict[str, str] = {name: fam for fam, names in FAMILIES.items() for name in names}

_AUGMENTATION_FAMILY_NAMES = ("brightness", "contrast", "colour", "geometric", "noise", "gaussian_blur", "occlusion")

#: Corruptions of the families that training-time augmentation may simulate.
AUGMENTATION_FAMILIES: tuple[str, ...] = tuple(n for f in _AUGMENTATION_FAMILY_NAMES for n in FAMILIES[f])

#: Corruptions held out from augmentation: the default of the robustness evaluation.
EVALUATION_FAMILIES: tuple[str, ...] = tuple(
    n for f, names in FAMILIES.items() if f not in _AUGMENTATION_FAMILY_NAMES for n in names
)

_GROUPS = {"all": tuple(CORRUPTIONS), "augmentation": AUGMENTATION_FAMILIES, "evaluation": EVALUATION_FAMILIES}


def list_corruptions(group: str = "all") -> list[str]:
    """Names of the corruptions in ``group``: ``"all"``, ``"augmentation"``, ``"evaluation"`` or a family."""
    if group in _GROUPS:
        return list(_GROUPS[group])
    if group in FAMILIES:
        return list(FAMILIES[group])
    choices = [*_GROUPS, *FAMILIES]
    raise ValueError(f"unknown corruption group; expected one of {choices}. Received: group={group!r}")


def _unknown(name: str) -> ValueError:
    close = difflib.get_close_matches(name, list(dict.fromkeys([*CORRUPTIONS, *_GROUPS, *FAMILIES])), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ValueError(
        f"unknown corruption {name!r}.{hint} Known: {', '.join(CORRUPTIONS)} "
        f"(or a group: {', '.join([*_GROUPS, *FAMILIES])}). Received: name={name!r}"
    )


def resolve_corruptions(names: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Expand names, families and groups (``"evaluation"``...) into corruption names, in order, once each.

    A string is split on commas.

    Example:
        >>> resolve_corruptions("brightness,pixelate")
        ('brightness_up', 'brightness_down', 'pixelate')
    """
    items = [p.strip() for p in names.split(",")] if isinstance(names, str) else [str(p).strip() for p in names]
    out: list[str] = []
    for item in items:
        if not item:
            continue
        if item in CORRUPTIONS:
            expanded: list[str] = [item]
        elif item in _GROUPS or item in FAMILIES:
            expanded = list_corruptions(item)
        else:
            raise _unknown(item)
        out.extend(n for n in expanded if n not in out)
    if not out:
        raise ValueError(f"no corruption named. Received: names={names!r}")
    return tuple(out)


def corruption_seed(seed: int, name: str) -> np.random.Generator:
    """The generator :func:`corrupt` uses for ``name`` with ``seed``: independent per corruption.

    It does not depend on the severity, so one seed corrupts the same images in the same
    way at every severity, only more strongly.
    """
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def corrupt(
    images: np.ndarray, name: str, severity: int = 3, seed: int | np.random.Generator | None = 0
) -> np.ndarray:
    """Apply corruption ``name`` at ``severity`` (1..5) to a ``uint8`` batch; returns a new array.

    Args:
        images: ``uint8`` ``(n, h, w, 3)`` RGB (not modified).
        name: a key of :data:`CORRUPTIONS` (see :func:`list_corruptions`).
        severity: 1 (mild) to 5 (severe).
        seed: an int (combined with ``name`` by :func:`corruption_seed`, so two corruptions
            with one seed draw independently), a ``numpy.random.Generator`` (used as is),
            or ``None`` (fresh randomness).

    Raises:
        ValueError: unknown ``name`` (with close matches), bad ``severity`` or ``images``.
    """
    if name not in CORRUPTIONS:
        raise _unknown(str(name))
    check_batch(images)
    severity = check_severity(severity)
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        rng = corruption_seed(int(seed), name)
    else:
        rng = as_generator(seed, "seed")
    return CORRUPTIONS[name](images, severity, rng)
