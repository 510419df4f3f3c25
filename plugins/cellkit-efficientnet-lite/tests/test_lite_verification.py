"""The port is the network the weights were trained for: numbers, meaning, and backends agree.

* numerical: logits equal an independent ``torch.nn.functional`` forward written from the
  checkpoint tensors (``torch_reference.py``) within 1e-4, for all three variants;
* semantic: with the ImageNet head, scikit-image's ``chelsea`` is a cat (ImageNet 281-285)
  and ``coffee`` an espresso (967);
* backends: JAX (and PyTorch, where installed; marked ``slow``) give TensorFlow's logits,
  upsampling included (the ``Resizing`` layer is part of the model).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from cellkit_efficientnet_lite import VARIANTS, build_efficientnet_lite, read_state_dict
from conftest import require_checkpoint

skimage_data = pytest.importorskip("skimage.data", reason="the test images come from scikit-image")
from skimage.transform import resize  # noqa: E402

CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


def _images(size: tuple[int, int]) -> np.ndarray:
    """chelsea and coffee resized to ``size`` (0-255 float32), plus one seeded noise image."""
    photos = [
        resize(getattr(skimage_data, name)(), size, preserve_range=True, anti_aliasing=True)
        for name in ("chelsea", "coffee")
    ]
    noise = np.random.default_rng(0).uniform(0, 255, (*size, 3))
    return np.stack([*photos, noise]).astype("float32")


@pytest.fixture(scope="module", params=list(VARIANTS))
def imagenet_model(request: pytest.FixtureRequest) -> tuple[str, keras.Model, np.ndarray]:
    variant = request.param
    require_checkpoint(variant)
    res = VARIANTS[variant].resolution
    model = build_efficientnet_lite(variant, (res, res, 3), weights="imagenet", include_top=True)
    images = _images((res, res))
    return variant, model, images


def test_chelsea_is_a_cat_and_coffee_an_espresso(imagenet_model) -> None:
    variant, model, images = imagenet_model
    logits = np.asarray(model(images[:2]))
    assert logits.shape == (2, 1000)
    assert int(logits[0].argmax()) in CATS, variant
    assert int(logits[1].argmax()) == ESPRESSO, variant
    p = np.exp(logits[1] - logits[1].max())
    assert p[ESPRESSO] / p.sum() > 0.5


def test_logits_equal_a_torch_functional_reference(imagenet_model, torch) -> None:
    from torch_reference import reference_logits

    variant, model, images = imagenet_model
    expected = reference_logits(read_state_dict(require_checkpoint(variant)), images)
    np.testing.assert_allclose(np.asarray(model(images)), expected, rtol=0, atol=1e-4)


def test_odd_sizes_pad_like_tensorflow(torch) -> None:
    # 97 x 130: odd and even sides, so stride-2 layers pad (1, 1) on one axis and (0, 1) on the other.
    from torch_reference import reference_logits

    path = require_checkpoint("efficientnet_lite0")
    model = build_efficientnet_lite("efficientnet_lite0", (97, 130, 3), weights="imagenet", include_top=True)
    images = _images((97, 130))
    np.testing.assert_allclose(
        np.asarray(model(images)), reference_logits(read_state_dict(path), images), atol=1e-4
    )


_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, keras
    from cellkit_efficientnet_lite import build_efficientnet_lite
    images = np.load(sys.argv[1])
    model = build_efficientnet_lite("efficientnet_lite0", (96, 96, 3), "imagenet", include_top=True, resize_to=224)
    logits = model.predict(images, batch_size=len(images), verbose=0)
    print(json.dumps({"backend": keras.backend.backend(), "logits": np.asarray(logits).tolist()}))
    """
)


@pytest.mark.parametrize("backend", ["jax", pytest.param("torch", marks=pytest.mark.slow)])
def test_other_backends_give_the_same_logits(backend: str, tmp_path: Path) -> None:
    pytest.importorskip(
        backend, reason=f"Keras' {backend} backend needs {backend} installed", exc_type=ImportError
    )
    require_checkpoint("efficientnet_lite0")
    images = _images((96, 96))
    np.save(tmp_path / "images.npy", images)
    import cellkit_efficientnet_lite

    source = str(Path(cellkit_efficientnet_lite.__file__).resolve().parents[1])  # works uninstalled too
    path = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH", "")) if p)
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "CUDA_VISIBLE_DEVICES": "",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": path,
    }
    run = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path / "images.npy")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["backend"] == backend
    model = build_efficientnet_lite(
        "efficientnet_lite0", (96, 96, 3), "imagenet", include_top=True, resize_to=224
    )
    np.testing.assert_allclose(np.asarray(result["logits"]), np.asarray(model(images)), rtol=0, atol=1e-4)
