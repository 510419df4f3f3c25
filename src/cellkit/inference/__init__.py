"""Inference: saving and loading models, class probabilities, test-time augmentation, ensembles, export.

* :mod:`cellkit.inference.saving`: :func:`save_model` / :func:`load_model` (``.keras``
  files, ``safe_mode=True``) and the one list of the modules that register cellkit's
  saveable layers (:data:`CUSTOM_OBJECT_MODULES`);
* :mod:`cellkit.inference.predict`: :func:`predict_proba`, batch by batch from ``uint8``;
* :mod:`cellkit.inference.predictor`: :func:`predict_dataset` (``cellkit.predict``), a table of
  :class:`Predictions` for new images, with the quality flags of the images not to trust;
* :mod:`cellkit.inference.tta`: test-time augmentation as saveable layers
  (:func:`with_tta`; specifications such as ``"d4+color"`` are parsed without Keras);
* :mod:`cellkit.inference.ensemble`: :func:`average_predictions` and :func:`build_ensemble`;
* :mod:`cellkit.inference.temperature`: :class:`TemperatureScaling`, a saveable layer that
  divides the logits by a fitted temperature (:func:`cellkit.evaluate.calibrate_model`);
* :mod:`cellkit.inference.batch_adaptation`: :func:`with_batch_adaptation`, a model whose batch
  norms adapt to every batch it predicts (a new microscope, no adaptation step);
* :mod:`cellkit.inference.export`: :func:`export_submission`, the course's ``model.py`` folder.

Names are imported from their module on first use: ``from cellkit.inference import
TTA_SPECS`` does not import Keras.

Example:
    >>> from cellkit.inference import num_views, parse_tta
    >>> parse_tta("d4+color"), num_views("flips")
    (('d4', True), 4)
"""

from __future__ import annotations

from cellkit._lazy import lazy_names

#: Public names, by the module that defines them.
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        ("CUSTOM_OBJECT_MODULES", "load_model", "register_custom_objects", "resolve_model_path", "save_model"),
        "cellkit.inference.saving",
    ),
    **dict.fromkeys(("check_input_size", "predict_proba"), "cellkit.inference.predict"),
    **dict.fromkeys(
        ("MIN_CONFIDENCE", "PredictionWarning", "Predictions", "predict_dataset"), "cellkit.inference.predictor"
    ),
    # parsing TTA specifications needs no Keras
    **dict.fromkeys(("COLOR_FACTORS", "TTA_MODES", "TTA_SPECS", "num_views", "parse_tta"), "cellkit.inference._tta_spec"),
    **dict.fromkeys(("TestTimeAugmentation", "ViewAverage", "with_tta"), "cellkit.inference.tta"),
    **dict.fromkeys(("AveragePredictions", "average_predictions", "build_ensemble"), "cellkit.inference.ensemble"),
    **dict.fromkeys(("EXPORT_FORMATS", "export_submission"), "cellkit.inference.export"),
    **dict.fromkeys(("TemperatureScaling", "with_temperature"), "cellkit.inference.temperature"),
    "apply_temperature": "cellkit.inference._temperature_math",  # NumPy only
    "with_batch_adaptation": "cellkit.inference.batch_adaptation",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
