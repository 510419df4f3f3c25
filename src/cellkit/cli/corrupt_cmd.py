"""``cellkit corrupt PATH --out OUT.npz``: a corrupted copy of a dataset, to test robustness.

By default every image gets one corruption and one severity: the (corruption, severity)
pairs are spread evenly over the images (a shuffled round robin, so each pair gets the
same number of images, give or take one). With ``--grid`` every image is written once per corruption and
severity. The npz holds ``images``, ``labels``, ``ids`` and ``class_names`` (readable by
``cellkit.load``) plus ``corruption`` (name per image) and ``severity`` (1-5 per image).
The input is never modified; the output is written atomically.

Example:
    $ cellkit corrupt sample --out shifted.npz --corruptions evaluation --severity all --seed 0
"""

from __future__ import annotations

import argparse
import zlib
from pathlib import Path

import numpy as np

from cellkit._io import atomic_save_npz
from cellkit._progress import progress
from cellkit.cli import EXIT_OK, add_data_arguments, add_quiet, check_npz_output, load_dataset
from cellkit.corrupt.suite import CORRUPTIONS, FAMILIES, SEVERITIES, resolve_corruptions
from cellkit.errors import DataError

#: Largest output ``--grid`` writes (bytes of images).
MAX_GRID_BYTES = 4 * 2**30


def _corruptions(text: str) -> tuple[str, ...]:
    try:
        return resolve_corruptions(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _severities(text: str) -> tuple[int, ...]:
    if text.strip().lower() == "all":
        return SEVERITIES
    try:
        values = tuple(dict.fromkeys(int(v) for v in text.split(",") if v.strip()))
    except ValueError:
        values = ()
    if not values or any(v not in SEVERITIES for v in values):
        raise argparse.ArgumentTypeError(f"expected 1-5, a comma-separated list of them, or 'all'. Received: {text!r}")
    return values


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "corrupt",
        help="write a corrupted copy of a dataset (microscopy corruption suite, 5 severities)",
        description="Corrupt every image with one corruption of the suite (or, with --grid, with every "
        "corruption at every severity) and write OUT.npz with the corruption and severity of each image. "
        f"Corruptions: {', '.join(CORRUPTIONS)}; families: {', '.join(FAMILIES)}; groups: evaluation "
        "(held out from augmentation), augmentation, all.",
    )
    add_data_arguments(p)
    p.add_argument("--out", type=Path, required=True, metavar="OUT.npz", help="where to write the corrupted copy")
    p.add_argument(
        "--corruptions",
        type=_corruptions,
        default=resolve_corruptions("evaluation"),
        metavar="NAMES",
        help="comma-separated corruptions, families or groups (default: evaluation, the held-out families)",
    )
    p.add_argument(
        "--severity",
        type=_severities,
        default=(3,),
        metavar="S",
        help="1-5, a comma-separated list, or 'all' (default 3); several are spread evenly over the images",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--grid", action="store_true", help="every image x every corruption x every severity")
    add_quiet(p)
    p.set_defaults(func=run)


def _group_rng(seed: int, name: str, severity: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(name.encode()), int(severity)])


def run(args: argparse.Namespace) -> int:
    out = check_npz_output(args)
    names: tuple[str, ...] = args.corruptions
    sevs: tuple[int, ...] = args.severity
    dataset = load_dataset(args)
    n = len(dataset)
    if args.grid:
        size = n * len(names) * len(sevs) * int(np.prod(dataset.images.shape[1:]))
        if size > MAX_GRID_BYTES:
            raise DataError(
                f"--grid would write {size / 2**30:.1f} GiB of images ({n} x {len(names)} corruptions x "
                f"{len(sevs)} severities); choose fewer corruptions or severities, or drop --grid",
                path=out,
            )
        base = np.tile(np.arange(n), len(names) * len(sevs))
        which = np.repeat(np.arange(len(names) * len(sevs)), n)
        corruption = np.asarray(names)[which // len(sevs)]
        severity = np.asarray(sevs, np.int64)[which % len(sevs)]
    else:
        # a shuffled round robin over the (corruption, severity) cells: each gets n / cells images, +-1
        cell = np.random.default_rng(args.seed).permutation(np.arange(n) % (len(names) * len(sevs)))
        base = np.arange(n)
        corruption = np.asarray(names)[cell // len(sevs)]
        severity = np.asarray(sevs, np.int64)[cell % len(sevs)]
    images = np.empty((base.size, *dataset.images.shape[1:]), np.uint8)
    groups = [(name, s) for name in names for s in sevs]
    for name, s in progress(groups, desc="corrupting", total=len(groups), unit="group", quiet=args.quiet):
        sel = np.flatnonzero((corruption == name) & (severity == s))
        if sel.size:
            images[sel] = CORRUPTIONS[name](dataset.images[base[sel]], s, _group_rng(args.seed, name, s))
    ids = [dataset.ids[b] for b in base]
    if args.grid:
        ids = [f"{i}|{c}@{s}" for i, c, s in zip(ids, corruption, severity, strict=True)]
    arrays: dict[str, np.ndarray] = {
        "images": images,
        "ids": np.asarray(ids, dtype=str),
        "class_names": np.asarray(dataset.class_names, dtype=str),
        "corruption": corruption.astype(str),
        "severity": severity,
    }
    if dataset.labels is not None:
        arrays["labels"] = dataset.labels[base]
    atomic_save_npz(out, **arrays)
    print(f"{dataset.source}: {n} images -> {out} ({images.shape[0]} images)")
    for name in names:
        counts = {int(s): int(np.sum((corruption == name) & (severity == s))) for s in sevs}
        print(f"  {name}: " + ", ".join(f"severity {s}: {c}" for s, c in counts.items()))
    return EXIT_OK
