"""TTA specifications (``"d4"``, ``"flips+color"``, ...): parsing without importing Keras.

The layers live in :mod:`cellkit.inference.tta`; recipes and the command line validate a
specification with this module alone, so ``cellkit --help`` and recipe checks stay fast.

Example:
    >>> parse_tta("d4+color"), num_views("rot90")
    (('d4', True), 4)
"""

from __future__ import annotations

__all__ = ["COLOR_FACTORS", "TTA_MODES", "TTA_SPECS", "num_views", "parse_tta"]

#: Geometric views of each mode and how many views each gives.
TTA_MODES: dict[str, int] = {"flips": 4, "rot90": 4, "d4": 8}
#: Saturation factors of the two ``+color`` views (the identity factor 1.0 is the view itself).
COLOR_FACTORS: tuple[float, float] = (0.8, 1.2)
_COLOR_SUFFIX = "+color"
#: Every specification a recipe or ``--tta`` accepts (``"none"``: no test-time augmentation).
TTA_SPECS: tuple[str, ...] = ("none", *TTA_MODES, *(m + _COLOR_SUFFIX for m in TTA_MODES))


def parse_tta(spec: str | bool | None) -> tuple[str, bool] | None:
    """``"d4+color" -> ("d4", True)``; ``True`` means ``"flips"``; ``None``/``False``/``"none"``: no TTA.

    Raises:
        ValueError: an unknown specification (the message lists the valid ones).
    """
    if spec is None or spec is False or spec == "none":
        return None
    if spec is True:
        return "flips", False
    if isinstance(spec, str):
        mode, color = (spec[: -len(_COLOR_SUFFIX)], True) if spec.endswith(_COLOR_SUFFIX) else (spec, False)
        if mode in TTA_MODES:
            return mode, color
    raise ValueError(f"tta must be None, True, False or one of {list(TTA_SPECS)}. Received: tta={spec!r}")


def num_views(spec: str | bool) -> int:
    """How many views (forward passes per image) a TTA specification costs."""
    parsed = parse_tta(spec)
    if parsed is None:
        return 1
    mode, color = parsed
    return TTA_MODES[mode] * (1 + len(COLOR_FACTORS) * color)
