"""The ``cellkit`` command line: ``main(argv) -> int``, callable from tests.

Each subcommand lives in its own module of this package, which defines
``register(subparsers)``: it adds one parser and sets ``func=run`` on it, where
``run(args) -> int`` returns the exit code. Exit codes: 0 success, 1 failure,
2 bad input (unreadable data, bad arguments).

Example:
    >>> from cellkit.cli import main
    >>> main(["--version"])
    cellkit ...
    0
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cellkit import __version__
from cellkit.errors import CellkitError, DataError

__all__ = [
    "add_data_arguments",
    "add_quiet",
    "build_parser",
    "check_npz_output",
    "check_output_files",
    "load_dataset",
    "main",
    "require_labels",
]

#: Subcommand modules, in the order ``cellkit --help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "cellkit.cli.inspect_cmd",
    "cellkit.cli.clean_cmd",
    "cellkit.cli.split_cmd",
    "cellkit.cli.zoo_cmd",
    "cellkit.cli.corrupt_cmd",
    "cellkit.cli.train_cmd",
    "cellkit.cli.evaluate_cmd",
    "cellkit.cli.calibrate_cmd",
    "cellkit.cli.predict_cmd",
    "cellkit.cli.explain_cmd",
    "cellkit.cli.ensemble_cmd",
    "cellkit.cli.adapt_cmd",
    "cellkit.cli.export_cmd",
)

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2

# The command line keeps TensorFlow's C++ log lines (oneDNN, cuInit) out of the user's terminal
# unless --verbose; a level the user set in the environment is kept. TensorFlow is imported
# lazily, after this. TF_ENABLE_ONEDNN_OPTS is never touched: it changes numerical results.
_USER_TF_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cellkit", description="Classify microscope images of blood cells."
    )
    parser.add_argument("--version", action="version", version=f"cellkit {__version__}")
    parser.add_argument(
        "--verbose", action="store_true",
        help="keep TensorFlow's own log lines (oneDNN, CUDA) on stderr; give it before the command",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """Add the common ``--quiet`` flag (no progress bars, only essential output)."""
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors and warnings (no progress bars, no report)")


def add_detector_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--seed`` and ``--blend-modes`` (the quality detectors' options); read with :func:`superposition_detector`."""
    parser.add_argument("--seed", type=int, default=0, help="seed of the detectors' self-supervision (default 0)")
    parser.add_argument(
        "--blend-modes", action="store_true",
        help="the superposition detector also learns overlays mixed in by an image editor's layer modes (multiply, "
        "screen, darken, lighten): finds more of those, flags more clean images (docs/quality.md)",
    )


def superposition_detector(args: argparse.Namespace):  # noqa: ANN201 - a SuperpositionDetector or None
    """The superposition detector ``--blend-modes`` asks for; ``None``: the default one."""
    if not args.blend_modes:
        return None
    from cellkit.corrupt.superpose import BLEND_MODES
    from cellkit.quality.superposition import SuperpositionDetector

    return SuperpositionDetector(random_state=args.seed, blend_modes=tuple(BLEND_MODES))


def add_tta(parser: argparse.ArgumentParser, what: str) -> None:
    """Add ``--tta VIEWS`` (a :mod:`cellkit.inference.tta` specification; ``what`` says what it does here)."""
    from cellkit.inference import TTA_SPECS

    parser.add_argument("--tta", metavar="VIEWS", choices=TTA_SPECS,
                        help=f"{what}: {', '.join(TTA_SPECS)} (test-time augmentation)")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the dataset argument ``PATH`` and the loader's options (``--strict``, ``--convert``, ``--size``)."""
    parser.add_argument(
        "path", metavar="PATH",
        help="class-folder tree, flat folder of images (unlabelled), .npz file, or 'sample' (the bundled sample)",
    )
    parser.add_argument("--strict", action="store_true", help="stop at the first unreadable or refused file")
    parser.add_argument(
        "--convert", action="store_true", help="convert grayscale/RGBA/16-bit images to 8-bit RGB instead of refusing them"
    )
    parser.add_argument(
        "--size", type=_size, metavar="HxW", help="resize every image to HxW (default: all images must share one size)"
    )


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 96x96. Received: {text!r}") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes. Received: {text!r}")
    return h, w


def load_dataset(args: argparse.Namespace):  # noqa: ANN201 - returns cellkit.data.Dataset
    """Load ``args.path`` with the options of :func:`add_data_arguments`; problems go to stderr."""
    import warnings

    from cellkit.data import DataWarning, load

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        dataset = load(args.path, strict=args.strict, convert=args.convert, size=args.size, quiet=args.quiet)
    for w in caught:
        if not issubclass(w.category, DataWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    for path, reason in dataset.problems:
        print(f"warning: left out {path}: {reason}", file=sys.stderr)
    return dataset


def require_labels(dataset, command: str) -> None:  # noqa: ANN001 - a cellkit.data.Dataset
    """:class:`~cellkit.errors.DataError` if ``dataset`` is unlabelled: ``command`` needs labels.

    One message for every command that does (``train``, ``evaluate``, ``split``): an
    unlabelled ``.npz`` or a flat folder of images is refused alike.
    """
    from cellkit.errors import DataError

    if dataset.labels is None:
        raise DataError(
            f"cellkit {command} needs labelled data, and these images have no labels (expected one sub-folder "
            "per class, or an .npz with a 'labels' array; `cellkit predict` classifies unlabelled images)",
            path=dataset.source,
        )


def check_npz_output(args: argparse.Namespace) -> Path:
    """``args.out`` if it is a writable ``.npz`` path outside the input (checked before any work).

    The ``.removed.csv`` companion that ``clean`` writes beside it is checked too.
    """
    from cellkit.errors import DataError

    out = Path(args.out)
    if out.suffix.lower() != ".npz":
        raise DataError("--out: expected an output file ending in .npz", path=out)
    check_output_files([(out, "--out"), (out.with_suffix(".removed.csv"), "--out's .removed.csv")], [args.path])
    return out


def resolve_split_file(args: argparse.Namespace, *, run_split_by_default: bool) -> Path | None:
    """The split file a command reads: ``--split-file``, else ``MODEL/split.json`` of a run folder.

    ``run_split_by_default``: use the run folder's split even without ``--subset`` (``calibrate``
    fits on its val part); otherwise only when ``--subset`` asks for a part (``evaluate``).
    ``--subset`` with no split to read is a :class:`DataError`.
    """
    if args.split_file is not None:
        return args.split_file
    candidate = Path(args.model) / "split.json"
    if candidate.is_file() and (args.subset or run_split_by_default):
        return candidate
    if args.subset:
        raise DataError("--subset needs --split-file (or MODEL as a run folder with split.json)", path=args.model)
    return None


def check_output_files(
    outputs: Sequence[tuple[str | os.PathLike[str] | None, str]], inputs: Sequence[str | os.PathLike[str] | None]
) -> None:
    """Check single-file outputs before any work: ``(path, argument)`` pairs; ``None`` paths skipped.

    Each must not be an existing folder, an input, inside an input folder, or in an
    unwritable place, and no two may name the same file.
    """
    from cellkit._outputs import check_not_input, check_writable_parent
    from cellkit.errors import DataError

    seen: dict[Path, str] = {}
    for dest, argument in outputs:
        if dest is None:
            continue
        path = Path(dest)
        if path.is_dir():
            raise DataError(f"{argument} is an existing folder (expected a file path)", path=path)
        check_not_input(path, inputs, argument=argument)
        check_writable_parent(path, argument=argument)
        key = path.resolve()
        if key in seen:
            raise DataError(f"{argument} and {seen[key]} name the same file (expected two different files)",
                            path=path)
        seen[key] = argument


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 for bad arguments, 0 for --help/--version
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    if getattr(args, "verbose", False) and _USER_TF_LOG_LEVEL is None:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    try:
        with contextlib.ExitStack() as stack:
            if getattr(args, "quiet", False):  # --quiet: nothing on stdout; errors and warnings on stderr
                stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
            if not getattr(args, "verbose", False):
                from cellkit.cli._quiet_tf import quiet_import

                stack.enter_context(quiet_import())
            return int(args.func(args))
    except BrokenPipeError:  # `cellkit ... | head`: the reader left; no traceback
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except (CellkitError, FileNotFoundError) as exc:
        print(f"cellkit {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"cellkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
