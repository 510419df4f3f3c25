"""``cellkit train PATH --out RUN_DIR [--recipe FILE|PRESET] [--backbone NAME] ...``: run a recipe.

The recipe (a ``.toml``/``.json`` file or a preset name, see ``--list-recipes``) may set
everything; the flags override it. ``--epochs`` sets the epochs of every phase.
The run folder holds the recipe, the split, the history, the best and final models, the
test metrics and two figures (see :mod:`cellkit.train.runner`). Ctrl-C writes everything
from the best checkpoint so far and exits with 130.

Example:
    $ cellkit train sample --recipe report-baseline --epochs 2 --out runs/baseline
    $ cellkit train pbc96 --recipe report-transfer --backbone convnext_small --out runs/cnx
"""

from __future__ import annotations

import argparse
import sys

from cellkit.cli import EXIT_OK, add_data_arguments, add_quiet, add_tta, load_dataset, require_labels

EXIT_INTERRUPTED = 130


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a classifier with a recipe and write a run folder (model, metrics, figures)",
        description="Train a classifier: split the data (stratified 72/8/20 by default), build the backbone "
        "with the report's head, train (two-phase transfer learning, or from scratch), evaluate on the test "
        "split. The recipe may set everything; flags override it.",
    )
    add_data_arguments(p)
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder to create (must be new or empty)")
    p.add_argument("--recipe", metavar="FILE|PRESET",
                   help="recipe file (.toml/.json) or preset name (`cellkit recipes`); `robust` is the recommended "
                   "start; default: the preset the --backbone's plugin declares, else cellkit's default recipe")
    p.add_argument("--list-recipes", action=_ListRecipes, nargs=0,
                   help="list the preset recipes and exit (as `cellkit recipes`)")
    p.add_argument("--backbone", metavar="NAME", help="backbone (see `cellkit backbones`); default: the recipe's")
    p.add_argument("--weights", metavar="imagenet|PATH|none", help="pretrained weights tag, .weights.h5 file, or none")
    p.add_argument("--epochs", type=int, metavar="N", help="epochs of every phase")
    p.add_argument("--batch-size", type=int, metavar="N", help="images per training step")
    p.add_argument("--seed", type=int, metavar="S", help="seed of the split, initialisation, shuffling, augmentation")
    p.add_argument("--augmentation", metavar="POLICY", help="augmentation policy: none, light, strong or severe")
    p.add_argument("--normalize", metavar="reinhard|grayworld|macenko|none",
                   help="stain/illumination normalisation layer applied in the model to the raw image, before "
                   "the backbone; default: the recipe's (none)")
    add_tta(p, "views averaged by the saved model.keras")
    p.add_argument("--split-file", metavar="SPLIT_JSON", help="use this split (e.g. another run's split.json)")
    p.add_argument(
        "--distribute", action="store_true",
        help="data-parallel over all local devices (MirroredStrategy on TensorFlow, DataParallel on JAX)",
    )
    p.add_argument(
        "--time-limit", type=float, metavar="MINUTES",
        help="wall-clock budget for training: no epoch starts that would end past it (default: the recipe's "
        "time_limit, if any)",
    )
    p.add_argument(
        "--folds", type=int, metavar="K",
        help="K-fold cross-validation: train K runs into RUN_DIR/fold-1..K, each tested on its fold; writes "
        "cv.json (mean +- std), oof.npz (out-of-fold probabilities, for `cellkit inspect --labels-from`) and "
        "ensemble.keras (the K models averaged); near-duplicates stay within one fold",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the run files of an existing RUN_DIR")
    add_quiet(p)
    p.set_defaults(func=run)


class _ListRecipes(argparse.Action):
    """Print the presets and exit during parsing (like ``--version``: no PATH needed)."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        from cellkit.cli.zoo_cmd import print_recipes

        print_recipes()
        parser.exit(0)


def build_recipe(args: argparse.Namespace):  # noqa: ANN201 - returns cellkit.train.Recipe
    """The recipe of ``--recipe`` (else the preset ``--backbone`` declares, else the default) with the
    command-line overrides applied."""
    from cellkit.train import Recipe, load_preset, resolve_recipe

    declared = _declared_recipe(args.backbone) if not args.recipe and args.backbone else None
    recipe = resolve_recipe(args.recipe) if args.recipe else load_preset(declared) if declared else Recipe()
    if declared and not getattr(args, "quiet", False):
        print(f"recipe: {declared}, the preset that backbone {args.backbone!r} declares (--recipe to choose another)")
    changes = {}
    if args.backbone is not None:
        changes["backbone"] = args.backbone
    if args.weights is not None:
        changes["weights"] = None if args.weights.lower() == "none" else args.weights
    if args.batch_size is not None:
        changes["batch_size"] = args.batch_size
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.augmentation is not None:
        changes["augmentation"] = args.augmentation
    if args.normalize is not None:
        changes["normalize"] = None if args.normalize.lower() == "none" else args.normalize
    if args.tta is not None:
        changes["tta"] = args.tta
    if changes:
        recipe = recipe.replace(**changes)
    if args.epochs is not None:
        recipe = recipe.with_epochs(args.epochs)
    return recipe.resolved()


def _declared_recipe(backbone: str) -> str | None:
    """The preset a backbone's spec declares (``BackboneSpec.recipe``); unknown names are left to the recipe check."""
    from cellkit.zoo import backbone_specs

    spec = backbone_specs().get(backbone)
    return None if spec is None else spec.recipe


def run(args: argparse.Namespace) -> int:
    from cellkit.errors import CellkitError
    from cellkit.train import TrainingInterrupted, format_metrics, train

    if args.time_limit is not None and args.time_limit <= 0:
        raise CellkitError(f"train: --time-limit must be positive minutes. Received: {args.time_limit}")
    from cellkit._outputs import check_not_input, check_writable_parent

    if args.folds is not None and (args.folds < 2 or args.split_file):
        raise CellkitError(f"train: --folds must be an integer >= 2 and cannot be combined with --split-file "
                           f"(each fold is a test part). Received: --folds {args.folds}"
                           f"{' --split-file ' + args.split_file if args.split_file else ''}")
    recipe = build_recipe(args)
    check_not_input(args.out, [args.path, args.split_file])
    check_writable_parent(args.out)
    dataset = load_dataset(args)
    require_labels(dataset, "train")
    if args.folds is not None:
        return _cross_validate(args, dataset, recipe)
    split = None
    if args.split_file:
        from cellkit.data.split import Split

        split = Split.load(args.split_file, ids=dataset.ids)
    try:
        result = train(dataset, recipe, args.out, overwrite=args.overwrite, quiet=args.quiet,
                       distribute=args.distribute, split=split,
                       time_limit=None if args.time_limit is None else args.time_limit * 60)
    except TrainingInterrupted as exc:
        r = exc.result
        where = f"files written from the best checkpoint (epoch {r.best_epoch})" if r.best_epoch else "no epoch finished"
        print(f"cellkit train: interrupted; {where} in {r.run_dir}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if result.metrics:
        if not args.quiet:
            print(format_metrics(result.metrics))
        m = result.metrics
        plain = f" ({m['without_tta']['accuracy']:.4f} without tta={m['tta']})" if "without_tta" in m else ""
        print(f"{m['subset']} accuracy {m['accuracy']:.4f}{plain}, F1 (weighted) {m['f1_weighted']:.4f}, "
              f"best epoch {result.best_epoch} -> {result.run_dir}")
    return EXIT_OK


def _cross_validate(args: argparse.Namespace, dataset, recipe) -> int:  # noqa: ANN001
    from cellkit.train import TrainingInterrupted
    from cellkit.train.cross_validation import train_folds

    try:
        cv = train_folds(dataset, recipe, args.out, folds=args.folds, overwrite=args.overwrite, quiet=args.quiet,
                         time_limit=None if args.time_limit is None else args.time_limit * 60)
    except TrainingInterrupted as exc:
        print(f"cellkit train: interrupted in {exc.result.run_dir}; no cv.json written (the folder is incomplete)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"{cv} -> {cv.out}")
    return EXIT_OK
