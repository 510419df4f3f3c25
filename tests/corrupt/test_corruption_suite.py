"""The microscopy corruption suite: registry, per-corruption properties, engines, CLI, docs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cellkit
from cellkit.cli import main
from cellkit.cli.corrupt_cmd import _group_rng
from cellkit.corrupt import _batch, artefacts, blur_noise, photometric
from cellkit.corrupt.suite import (
    AUGMENTATION_FAMILIES,
    CORRUPTIONS,
    EVALUATION_FAMILIES,
    FAMILIES,
    FAMILY_OF,
    SEVERITY_PARAMETERS,
    corrupt,
    corruption_seed,
    list_corruptions,
    resolve_corruptions,
)
from strategies import seeds, uint8_images

ALL = list_corruptions()
#: Corruptions with a random part (the others ignore the seed).
SEEDED = {
    "hue_shift", "color_cast", "stain_jitter", "motion_blur", "gaussian_noise",
    "ink_deposits", "opaque_blots", "bubbles", "random_erasing", "dihedral", "rotate", "translate", "zoom",
}  # fmt: skip
DOCS = Path(__file__).resolve().parents[2] / "docs" / "corruptions.md"  # tests/corrupt/ -> the repository


@pytest.fixture(scope="module")
def cells(sample) -> np.ndarray:  # noqa: ANN001
    """16 sample cells, two per class."""
    idx = np.concatenate([np.flatnonzero(sample.labels == c)[:2] for c in range(8)])
    return sample.images[idx]


# --- registry and protocol ------------------------------------------------------------


def test_registry_families_and_split_are_consistent() -> None:
    assert set(SEVERITY_PARAMETERS) == set(CORRUPTIONS)
    assert sorted(FAMILY_OF) == sorted(CORRUPTIONS)  # every corruption in exactly one family
    assert sum(len(v) for v in FAMILIES.values()) == len(CORRUPTIONS)
    assert not set(AUGMENTATION_FAMILIES) & set(EVALUATION_FAMILIES)
    assert set(AUGMENTATION_FAMILIES) | set(EVALUATION_FAMILIES) == set(CORRUPTIONS)
    # a family is on one side only
    for names in FAMILIES.values():
        assert len({n in EVALUATION_FAMILIES for n in names}) == 1
    assert {"stain_jitter", "defocus_blur", "motion_blur", "jpeg_compression", "pixelate", "ink_deposits",
            "opaque_blots", "bubbles"} == set(EVALUATION_FAMILIES)  # fmt: skip
    assert list_corruptions("evaluation") == list(EVALUATION_FAMILIES)
    assert list_corruptions("geometric") == ["dihedral", "rotate", "translate", "zoom"]


def test_resolve_corruptions_expands_groups_once_in_order() -> None:
    assert resolve_corruptions("pixelate, brightness,pixelate") == ("pixelate", "brightness_up", "brightness_down")
    assert resolve_corruptions(["evaluation"]) == EVALUATION_FAMILIES
    assert resolve_corruptions("all") == tuple(CORRUPTIONS)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda x: corrupt(x, "bubbel", 1), r"Did you mean bubbles\?"),
        (lambda x: corrupt(x, "pixelate", 6), r"severity=6"),
        (lambda x: corrupt(x, "pixelate", 0), r"severity=0"),
        (lambda x: corrupt(x, "pixelate", True), r"severity=True"),
        (lambda x: corrupt(x.astype(np.float32), "pixelate", 1), r"uint8 array.*dtype=float32"),
        (lambda x: corrupt(x[0], "pixelate", 1), r"images\[None\]"),
        (lambda x: corrupt(x, "gaussian_noise", 1, seed="a"), r"`seed` must be an int >= 0.*seed='a'"),
        (lambda x: resolve_corruptions(""), r"no corruption named"),
        (lambda x: list_corruptions("held-out"), r"group='held-out'"),
    ],
)
def test_bad_arguments_are_named(call, match: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=match):
        call(np.zeros((2, 8, 8, 3), np.uint8))


# --- properties every corruption must have ---------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_shape_dtype_new_array_and_input_untouched(name: str, cells: np.ndarray) -> None:
    x = cells.copy()
    x.flags.writeable = False  # any in-place write would raise
    for severity in (1, 5):
        y = corrupt(x, name, severity, seed=3)
        assert y.shape == x.shape and y.dtype == np.uint8
        assert not np.shares_memory(x, y)
        assert np.any(y != x), f"{name} severity {severity} changed nothing"
    np.testing.assert_array_equal(x, cells)


@pytest.mark.parametrize("name", ALL)
def test_deterministic_for_a_seed(name: str, cells: np.ndarray) -> None:
    a = corrupt(cells, name, 3, seed=11)
    np.testing.assert_array_equal(a, corrupt(cells, name, 3, seed=11))
    np.testing.assert_array_equal(a, CORRUPTIONS[name](cells, 3, corruption_seed(11, name)))
    other = corrupt(cells, name, 3, seed=12)
    assert np.array_equal(a, other) == (name not in SEEDED)


@pytest.mark.parametrize("name", ALL)
def test_severity_is_monotone(name: str, cells: np.ndarray) -> None:
    ref = cells.astype(np.float64)
    mad = [np.abs(corrupt(cells, name, s, seed=7) - ref).mean() for s in range(1, 6)]
    assert all(b >= a for a, b in zip(mad, mad[1:], strict=False)), (name, mad)
    if name != "dihedral":  # the only corruption without a magnitude
        assert mad[-1] > 1.5 * mad[0], (name, mad)


@pytest.mark.parametrize("name", ALL)
def test_no_wraparound_on_white_and_black(name: str) -> None:
    """Values are clipped, never wrapped: white stays mostly bright, black mostly dark."""
    white = np.full((3, 48, 48, 3), 255, np.uint8)
    black = np.zeros((3, 48, 48, 3), np.uint8)
    w = corrupt(white, name, 5, seed=0)
    b = corrupt(black, name, 5, seed=0)
    if name == "brightness_down":
        assert np.all(w == round(255 * photometric.BRIGHTNESS_DOWN_GAINS[-1]))
    elif name == "ink_deposits":  # dark by design: but only where a deposit is
        assert np.median(w) == 255
    else:
        assert w.mean() > 200, (name, w.mean())
    if name == "bubbles":  # bright by design
        assert np.median(b) == 0
    else:
        assert b.mean() < 40, (name, b.mean())


@given(
    images=uint8_images(max_images=3, max_side=20),
    name=st.sampled_from(ALL),
    severity=st.integers(1, 5),
    seed=seeds(),
)
def test_property_any_batch(images: np.ndarray, name: str, severity: int, seed: int) -> None:
    before = images.copy()
    out = corrupt(images, name, severity, seed=seed)
    assert out.shape == images.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(images, before)
    np.testing.assert_array_equal(out, corrupt(images, name, severity, seed=seed))


# --- exact behaviour of individual corruptions -----------------------------------------


def test_photometric_values_by_hand() -> None:
    x = np.array([[[[100, 120, 200]]]], np.uint8)
    np.testing.assert_array_equal(corrupt(x, "brightness_down", 1)[0, 0, 0], [85, 102, 170])  # gain 0.85
    np.testing.assert_array_equal(corrupt(x, "brightness_up", 5)[0, 0, 0], [170, 204, 255])  # 1.7, clipped
    np.testing.assert_array_equal(corrupt(x, "contrast_down", 5)[0, 0, 0], [132, 136, 152])  # 0.2 around 140
    grey = np.full((1, 2, 2, 3), 77, np.uint8)
    for name in ("saturation_up", "saturation_down", "hue_shift", "contrast_up"):
        np.testing.assert_array_equal(corrupt(grey, name, 5), grey)  # no colour, one level: unchanged


def test_stain_matrices_are_scikit_images() -> None:
    from skimage.color import hed_from_rgb, rgb_from_hed

    np.testing.assert_allclose(photometric.RGB_FROM_HED, rgb_from_hed)
    np.testing.assert_allclose(photometric.HED_FROM_RGB, hed_from_rgb)


def test_stain_jitter_without_jitter_is_the_identity(monkeypatch: pytest.MonkeyPatch, cells: np.ndarray) -> None:
    monkeypatch.setattr(photometric, "STAIN_SIGMAS", (0.0,) * 5)
    monkeypatch.setattr(photometric, "STAIN_BIASES", (0.0,) * 5)
    out = photometric.stain_jitter(cells, 5, rng=0)
    assert np.abs(out.astype(int) - cells).max() <= 1  # OD round trip, up to float rounding


@pytest.mark.parametrize("name", ["gaussian_blur", "defocus_blur", "motion_blur", "pixelate", "rotate", "translate",
                                  "zoom"])  # fmt: skip
def test_constant_image_stays_constant_reflect_border(name: str) -> None:
    """Zero padding would darken the border; the reflected border keeps a flat field flat."""
    x = np.full((4, 24, 30, 3), 180, np.uint8)
    np.testing.assert_array_equal(corrupt(x, name, 5, seed=1), x)


def test_kernels_are_normalised_and_symmetric() -> None:
    for r in (1.0, 2.2, 4.0):
        k = blur_noise.disk_kernel(r)
        assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        assert abs(k.sum() - 1) < 1e-6 and np.allclose(k, k.T) and np.allclose(k, k[::-1])
    for angle in blur_noise.MOTION_ANGLES:
        k = blur_noise.motion_kernel(10.0, angle)
        assert abs(k.sum() - 1) < 1e-6 and np.allclose(k, k[::-1, ::-1], atol=1e-6)  # symmetric line
    horizontal = blur_noise.motion_kernel(7.0, 0.0)
    assert horizontal[horizontal.shape[0] // 2].sum() > 0.9  # along the middle row
    with pytest.raises(ValueError, match="radius=0"):
        blur_noise.disk_kernel(0)


def test_random_erasing_grows_one_rectangle_of_noise_in_place(cells: np.ndarray) -> None:
    from cellkit.corrupt.occlusion import ERASING_AREAS

    flat = np.full((40, 96, 96, 3), 128, np.uint8)
    masks = [np.any(corrupt(flat, "random_erasing", s, seed=5) != flat, axis=-1) for s in range(1, 6)]
    for small, large in zip(masks, masks[1:], strict=False):
        assert not np.any(small & ~large)  # the same centre: each rectangle contains the smaller one
    for s, mask in enumerate(masks, start=1):
        assert np.all(mask.mean(axis=(1, 2)) <= ERASING_AREAS[s - 1] + 0.01)  # clipped at the border, never larger
    assert np.median(masks[-1].mean(axis=(1, 2))) > 0.7 * ERASING_AREAS[-1]
    out = corrupt(cells, "random_erasing", 3, seed=5)
    kept = ~np.any(out != cells, axis=-1)
    np.testing.assert_array_equal(out[kept], cells[kept])  # outside the rectangle: untouched


def test_pixelate_averages_blocks() -> None:
    x = np.arange(36, dtype=np.uint8).reshape(1, 6, 6, 1).repeat(3, axis=3)
    out = corrupt(x, "pixelate", 2)[0, ..., 0]  # block 3
    assert out[0, 0] == round(np.mean(x[0, :3, :3, 0])) and out[5, 5] == round(np.mean(x[0, 3:, 3:, 0]))
    assert len(np.unique(out)) == 4


def test_dihedral_is_a_non_identity_symmetry(cells: np.ndarray) -> None:
    out = corrupt(cells, "dihedral", 3, seed=5)
    for x, y in zip(cells, out, strict=True):
        candidates = [np.rot90(t, k) for t in (x, x.transpose(1, 0, 2)) for k in range(4)]
        matches = [i for i, c in enumerate(candidates) if np.array_equal(c, y)]
        assert matches and 0 not in matches
    non_square = np.random.default_rng(0).integers(0, 256, (6, 5, 7, 3), dtype=np.uint8)
    assert corrupt(non_square, "dihedral", 1, seed=0).shape == non_square.shape


def test_artefacts_do_not_depend_on_the_chunk_size(monkeypatch: pytest.MonkeyPatch, cells: np.ndarray) -> None:
    """The windows of a chunk fit its largest artefact; with other chunks the result is identical."""
    ref = {n: corrupt(cells, n, 5, seed=2) for n in ("ink_deposits", "bubbles")}
    for chunk in (1, 5, 64):
        monkeypatch.setattr(artefacts, "_CHUNK", chunk)
        for name, expected in ref.items():
            np.testing.assert_array_equal(corrupt(cells, name, 5, seed=2), expected)


def test_chunked_engines_do_not_depend_on_the_chunk_size(monkeypatch: pytest.MonkeyPatch, cells: np.ndarray) -> None:
    names = ("gaussian_noise", "rotate", "motion_blur", "stain_jitter", "hue_shift")
    ref = {n: corrupt(cells, n, 4, seed=9) for n in names}
    for chunk in (1, 7):
        monkeypatch.setattr(_batch, "CHUNK", chunk)
        for name in names:
            np.testing.assert_array_equal(corrupt(cells, name, 4, seed=9), ref[name])


def test_artefacts_are_local(cells: np.ndarray) -> None:
    """One deposit or bubble covers a small part of the image and leaves the rest exactly as it was."""
    for name in ("ink_deposits", "bubbles"):
        changed = (corrupt(cells, name, 1, seed=4) != cells).any(axis=-1).mean(axis=(1, 2))
        assert np.all(changed < 0.35) and np.all(changed > 0.003), (name, changed)


def test_warp_batch_identity_and_reflection() -> None:
    x = np.random.default_rng(0).integers(0, 256, (3, 10, 12, 3), dtype=np.uint8)
    ys, xs = np.meshgrid(np.arange(10, dtype=np.float32), np.arange(12, dtype=np.float32), indexing="ij")
    same = _batch.warp_batch(x, np.broadcast_to(xs, (3, 10, 12)), np.broadcast_to(ys, (3, 10, 12)))
    np.testing.assert_array_equal(same, x)  # no bleeding between the stacked images
    mirrored = _batch.warp_batch(x, np.broadcast_to(-xs, (3, 10, 12)), np.broadcast_to(ys, (3, 10, 12)))
    np.testing.assert_array_equal(mirrored, x)  # -x reflects onto x
    np.testing.assert_allclose(_batch.reflect_coordinates(np.array([-1.0, 10.0, 12.5]), 10), [1.0, 8.0, 5.5])


# --- command line ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory: pytest.TempPathFactory, sample) -> Path:  # noqa: ANN001
    """40 sample images (5 per class) as an .npz, for the slower command-line checks."""
    path = tmp_path_factory.mktemp("corrupt") / "small.npz"
    idx = np.concatenate([np.flatnonzero(sample.labels == c)[:5] for c in range(8)])
    cellkit.save_npz(sample.subset(idx), path)
    return path


def test_cli_on_the_sample_writes_corrupted_copy_with_metadata(tmp_path: Path, sample) -> None:  # noqa: ANN001
    out = tmp_path / "shifted.npz"
    assert main(["corrupt", "sample", "--out", str(out), "--seed", "4", "-q"]) == 0
    with np.load(out, allow_pickle=False) as z:
        corruption, severity, images = z["corruption"], z["severity"], z["images"]
    n = len(sample)
    assert images.shape == sample.images.shape and corruption.shape == severity.shape == (n,)
    assert set(corruption) == set(EVALUATION_FAMILIES) and set(severity) == {3}  # the defaults
    loaded = cellkit.load(out)
    np.testing.assert_array_equal(loaded.labels, sample.labels)
    assert loaded.ids == sample.ids and loaded.class_names == sample.class_names
    for i in (0, 123, 479):  # each image is exactly the recorded corruption of the original
        group = np.flatnonzero(corruption == corruption[i])
        expected = CORRUPTIONS[corruption[i]](sample.images[group], 3, _group_rng(4, str(corruption[i]), 3))
        np.testing.assert_array_equal(images[i], expected[np.flatnonzero(group == i)[0]])


def test_cli_spreads_severities_evenly_and_is_reproducible(tmp_path: Path, small_npz: Path) -> None:
    runs = []
    for name in ("a.npz", "b.npz"):
        out = tmp_path / name
        argv = ["corrupt", str(small_npz), "--out", str(out), "--corruptions", "pixelate,bubbles", "--severity", "all"]
        assert main([*argv, "--seed", "1", "-q"]) == 0
        with np.load(out, allow_pickle=False) as z:
            runs.append({k: z[k] for k in ("images", "corruption", "severity")})
    _, counts = np.unique(np.char.add(runs[0]["corruption"], runs[0]["severity"].astype(str)), return_counts=True)
    assert counts.size == 10 and counts.min() == counts.max() == 4  # 40 images over 2 x 5 cells
    for key in runs[0]:
        np.testing.assert_array_equal(runs[0][key], runs[1][key])


def test_cli_grid(tmp_path: Path, small_npz: Path) -> None:
    source = cellkit.load(small_npz)
    out = tmp_path / "grid.npz"
    argv = ["corrupt", str(small_npz), "--out", str(out), "--corruptions", "pixelate,dihedral", "--severity", "1,4"]
    assert main([*argv, "--grid", "-q"]) == 0
    with np.load(out, allow_pickle=False) as z:
        n = len(source)
        assert z["images"].shape[0] == 4 * n
        assert list(z["corruption"][::n]) == ["pixelate", "pixelate", "dihedral", "dihedral"]
        assert list(z["severity"][::n]) == [1, 4, 1, 4]
        assert z["ids"][n] == f"{source.ids[0]}|pixelate@4"
        np.testing.assert_array_equal(z["images"][n : 2 * n], corrupt(source.images, "pixelate", 4))
        np.testing.assert_array_equal(z["labels"], np.tile(source.labels, 4))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--corruptions", "bubbel"], "Did you mean bubbles?"),
        (["--severity", "6"], "expected 1-5"),
        (["--severity", "x"], "expected 1-5"),
    ],
)
def test_cli_bad_arguments_exit_2(
    tmp_path: Path, small_npz: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(["corrupt", str(small_npz), "-q", "--out", str(tmp_path / "o.npz"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()
    assert main(["corrupt", str(small_npz), "-q"]) == 2  # --out is required


def test_cli_refuses_bad_output(tmp_path: Path, small_npz: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["corrupt", str(small_npz), "--out", str(tmp_path / "o.txt"), "-q"]) == 2
    assert "ending in .npz" in capsys.readouterr().err
    before = small_npz.read_bytes()
    assert main(["corrupt", str(small_npz), "--out", str(small_npz), "-q"]) == 2
    assert "overwrite the input" in capsys.readouterr().err
    assert small_npz.read_bytes() == before


# --- documentation ---------------------------------------------------------------------


def test_docs_document_every_corruption_and_its_parameters() -> None:
    text = DOCS.read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().strip("`"): line for line in text.splitlines() if line.startswith("| `")}
    for name, (param, values) in SEVERITY_PARAMETERS.items():
        assert name in rows, f"{name} missing from the table of {DOCS.name}"
        cells = [c.strip() for c in rows[name].split("|")[1:-1]]
        assert cells[1] == FAMILY_OF[name] and cells[2] == ("held out" if name in EVALUATION_FAMILIES else "augmentation")
        if name != "dihedral":
            assert cells[3] == param and cells[4:] == [f"{v:g}" for v in values], name
        assert text.count(f"`{name}`") >= 2, f"{name} is in the table but not described"
    assert "images/corruption_gallery.png" in text
    assert (DOCS.parent / "images" / "corruption_gallery.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
