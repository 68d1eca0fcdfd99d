"""PA against PA + SEE over paired seeds with the same budget for both: one cell, or a grid
of cells over embedding sizes and (Glyphs) training class counts.

    python -m see_cuda.train.compare --regime pretrained --seeds 5
    python -m see_cuda.train.compare --regime dims-classes --seeds 5        # the Glyphs grid
    python -m see_cuda.train.compare --regime dims-classes --dims 64 128 512 --dataset cub \\
        --data-root DIR --backbone resnet50 --backbone-weights FILE --device cuda --threads 8

`--regime` picks a named budget (`regimes.py`); `--dims` / `--train-classes` set or
override the grid's axes. Any further flag is a `python -m see_cuda.train` flag applied to
every run, after the regime's (so it overrides them). Glyphs regimes with pretraining
train the backbone once, on characters outside the retrieval split, unless
--backbone-weights is given; other data sets use --backbone-weights as it is.

Every flag is checked before anything is trained (the pretraining included), each error
naming the flag: the values of every run, the output folder, and --ks against the
evaluation set (the reports need R@1, R@2 and R@4).

Rerunning the same command resumes: finished runs are read back, unfinished ones continue
from their checkpoints. A folder holding a run trained with other values of flags that
change training (or a backbone pretrained with other settings) is refused before anything
is trained, naming the run and the flags; use another --out for other flags.
Writes summary.md / summary.json and plots under --out (and per cell, for a grid), and each
run's metrics under <cell>/runs/<loss>-seed<k>/; reports are rewritten after every pair.

`--base-losses L1 L2 ...` (the names of see-train's --base-loss) compares plain against SEE
of every listed loss on the same seeds (so the same initial weights and batches), each in its
own folder <out>/<loss>/ laid out as above (its cells under <out>/<loss>/cells/<cell>/, and
there the grid's reports of that loss), and writes a summary under --out with a row per loss
(and cell). Without it, see-train's
--base-loss (default proxy-anchor) is the one loss compared, in the layout above; a folder
written with --base-losses is refused without it, and the other way round.

    python -m see_cuda.train.compare --regime pretrained --base-losses proxy-anchor normalized-softmax arcface
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import time

import torch

from ..data.files import damaged, reading, write_text_atomically
from . import checkpoint
from .cli import DEBUG_HELP, OneLineParser, parse_config
from .config import BASE_LOSSES, FlagError
from .data import glyphs_protocol, searchable_items_of
from .failures import run_command
from .grid_report import write_grid_report
from .loss import BASE_SETTINGS
from .optim import schedule_note
from .paired_stats import difference_and_interval
from .plots import LOSS_NAMES, can_plot
from .preflight import check_ks_fit, prepare_out_dir
from .pretrain import PretrainSettings, pretrain_backbone
from .regimes import REGIMES
from .report import METRICS, write_report
from .run import train
from .run_record import ConfigMismatchError

PROG = "see-compare"
LOSSES = ("pa", "see")
LOG = "compare.log"
# The K of the recall@K the reports tabulate.
REPORTED_KS = tuple(int(metric.split("@")[1]) for metric in METRICS if metric.startswith("recall@"))


def log(out_dir: str, line: str) -> None:
    """Prints a progress line and appends it to <out>/compare.log (a grid runs for hours)."""
    print(line, flush=True)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, LOG), "a") as handle:
        handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


@dataclasses.dataclass
class Cell:
    name: str
    directory: str
    embedding_size: int
    train_classes: int | None  # None: the data set's (or the flags') class count
    epochs: int | None = None  # None: the flags' --epochs
    base_loss: str | None = None  # None: the flags' --base-loss


def at_least(minimum: int):
    """An argparse type: an int >= minimum (argparse names the flag in its error)."""
    def parse_int(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse_int.__name__ = "int"
    return parse_int


def build_parser() -> argparse.ArgumentParser:
    # No abbreviations: see-train's --base-loss and --seed would be taken for --base-losses and --seeds.
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n")[0], allow_abbrev=False,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                           epilog="Any further flag is a see-train flag (see-train --help), applied to every run "
                                  "after the regime's.")
    parser.add_argument("--regime", choices=tuple(REGIMES), default="scratch", help="the named budget (regimes.py)")
    parser.add_argument("--seeds", type=at_least(1), default=None, help="paired seeds 0..N-1 (from --first-seed); "
                        "None: the regime's")
    parser.add_argument("--first-seed", type=at_least(0), default=0, help="the first paired seed")
    parser.add_argument("--out", default=None, help="output folder (None: results/<dataset>/<regime>)")
    parser.add_argument("--dims", type=at_least(1), nargs="+", default=None, help="grid over embedding sizes")
    parser.add_argument("--train-classes", type=at_least(1), nargs="+", default=None,
                        help="Glyphs: grid over training class counts (all drawn from one pool of the largest, "
                             "so every cell is tested on the same characters)")
    parser.add_argument("--pretrain-epochs", type=at_least(1), default=None,
                        help="epochs of the Glyphs backbone's pretraining (None: the regime's)")
    parser.add_argument("--pretrain-characters", type=at_least(1), default=None,
                        help="characters drawn for pretraining before the retrieval ones are removed; "
                             "None: the regime's")
    parser.add_argument("--base-losses", choices=BASE_LOSSES, nargs="+", default=None,
                        help="compare plain against SEE of each loss listed, each in <out>/<loss>/; None: the "
                             "regime's losses, or for a regime without any, the one loss the training flags name, "
                             "in <out>")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    return parser


def parse(argv=None):
    """(compare's options, the see-train flags for every run)."""
    return build_parser().parse_known_args(argv)


def losses_to_compare(options, regime) -> list[str] | None:
    """--base-losses, else the regime's; None: the one loss of the training flags' --base-loss."""
    return options.base_losses or list(regime.base_losses) or None


def gives_flag(train_flags, flag: str) -> bool:
    return any(given == flag or given.startswith(flag + "=") for given in train_flags)


def build_cells(options, regime, base, train_flags=()) -> list[Cell]:
    """The cells of one loss, or with --base-losses those of each loss, in <out>/<loss>/."""
    if not options.base_losses:
        return loss_cells(options.out, options, regime, base, train_flags)
    if gives_flag(train_flags, "--base-loss"):
        raise FlagError("--base-loss: give the losses to compare by --base-losses alone")
    return [dataclasses.replace(cell, name=f"{loss}/{cell.name}" if cell.name else loss, base_loss=loss)
            for loss in dict.fromkeys(options.base_losses)
            for cell in loss_cells(os.path.join(options.out, loss), options, regime, base, train_flags)]


def loss_cells(out: str, options, regime, base, train_flags) -> list[Cell]:
    # A value given twice is one cell (dict.fromkeys keeps the order given).
    dims = tuple(dict.fromkeys(options.dims or regime.dims))
    classes = tuple(dict.fromkeys(options.train_classes or regime.train_classes))
    if classes and base.dataset != "glyphs":
        if options.train_classes:
            raise FlagError(f"--train-classes is a Glyphs axis; {base.dataset} has its own classes")
        classes = ()  # a preset's class axis: the data set's classes instead
    if not dims and not classes:
        return [Cell("", out, base.embedding_size, base.glyphs_train_classes)]
    cells = []
    for count in classes or (None,):
        for dim in dims or (base.embedding_size,):
            name = f"d{dim}" + (f"-c{count}" if count else "")
            try:
                epochs = None if gives_flag(train_flags, "--epochs") else regime.epochs_for(count)
            except ValueError as error:
                raise FlagError(f"--train-classes {count}: {error}") from None
            cells.append(Cell(name, os.path.join(out, "cells", name), dim, count, epochs))
    return cells


def base_config(regime, train_flags, cells_have_classes: tuple[int, ...]):
    base = parse_config(list(regime.flags) + ["--threads", "1", "--no-progress"] + train_flags)
    base.resume = True
    if cells_have_classes and base.dataset == "glyphs":
        # Without a pool (a regime's or --glyphs-class-pool), the largest count is the pool.
        base.glyphs_class_pool = base.glyphs_class_pool or max(cells_have_classes)
        if max(cells_have_classes) > base.glyphs_class_pool:
            raise FlagError(f"--train-classes {max(cells_have_classes)} exceeds the pool of "
                             f"{base.glyphs_class_pool} training characters; raise --glyphs-class-pool")
    return base


def run_config(base, cell: Cell, seed: int, loss: str):
    config = copy.deepcopy(base)
    config.seed, config.loss, config.embedding_size = seed, loss, cell.embedding_size
    if cell.train_classes:
        config.glyphs_train_classes = cell.train_classes
    if cell.epochs:
        config.epochs = cell.epochs
    if cell.base_loss:
        config.base_loss = cell.base_loss
    config.out_dir = os.path.join(cell.directory, "runs", f"{loss}-seed{seed}")
    return config


def pretrain_settings(options, regime, base) -> PretrainSettings:
    return PretrainSettings(
        characters_drawn=options.pretrain_characters or regime.pretraining.characters_drawn,
        epochs=options.pretrain_epochs or regime.pretraining.epochs, width=base.cnn_width,
        stem_stride=base.cnn_stem_stride, image_size=glyphs_protocol(base).image_size,
        batch_size=regime.pretraining.batch_size, lr=regime.pretraining.lr)


def prepare_backbone(options, regime, base) -> tuple[list[str], dict]:
    """Pretrains the Glyphs backbone once (or checks the one there); sets base.backbone_weights."""
    if regime.pretraining is None or base.dataset != "glyphs" or base.backbone_weights:
        return [], {}
    settings, protocol = pretrain_settings(options, regime, base), glyphs_protocol(base)
    weights = os.path.join(options.out, "pretrain", "backbone.pt")
    summary_path = os.path.splitext(weights)[0] + ".json"
    if os.path.exists(weights):
        recorded = read_json(summary_path) if os.path.exists(summary_path) else {}
        wanted = {"settings": dataclasses.asdict(settings), "retrieval_protocol": repr(protocol)}
        changed = [key for key in wanted if recorded.get(key) != wanted[key]]
        if changed:
            raise ConfigMismatchError(
                f"{weights} was pretrained with other {' and '.join(changed)} (recorded: "
                f"{ {key: recorded.get(key) for key in changed} }; asked: { {key: wanted[key] for key in changed} }); "
                "use another --out, or the recorded flags")
    else:
        summary = pretrain_backbone(weights, settings, protocol, progress=False)
        log(options.out, f"pretrained on {summary['characters']} disjoint characters in "
                         f"{summary['wall_seconds']:.0f} s")
    base.backbone_weights = weights
    pretraining = read_json(summary_path)
    note = (f"Backbone pretrained once by cross-entropy on {pretraining['characters']} CJK ideographs absent from "
            f"the retrieval split ({pretraining['epochs']} epochs, final training accuracy "
            f"{pretraining['history'][-1]['train_accuracy']:.0%}, {pretraining['wall_seconds'] / 60:.1f} min; "
            "pretrain/backbone.json), then fine-tuned by every run.")
    return [note], {"pretraining": pretraining}


def check_layout(options) -> None:
    """Refuses a folder written with --base-losses when it is not given, and the other way round."""
    single = [name for name in ("runs", "cells") if os.path.isdir(os.path.join(options.out, name))]
    per_loss = [name for name in BASE_LOSSES if os.path.isdir(os.path.join(options.out, name))]
    if options.base_losses and single:
        raise ConfigMismatchError(f"{options.out} holds a comparison of one --base-loss ({single[0]}/), not one per "
                                  "loss of --base-losses; use another --out, or the recorded flags")
    if not options.base_losses and per_loss:
        raise ConfigMismatchError(f"{options.out} holds a comparison per loss of --base-losses ({per_loss[0]}/); "
                                  "use another --out, or the recorded flags")


def check_folders(plan) -> dict:
    """{out_dir: (epochs done, history)} of the runs already there; refuses, before anything is
    trained, when any of them was trained with other flags."""
    found, refused = {}, []
    for config in plan:
        if checkpoint.exists(config.out_dir):
            try:
                found[config.out_dir] = checkpoint.check_resumable(config.out_dir, config)
            except ConfigMismatchError as error:
                refused.append(str(error))
    if refused:
        more = f" (and {len(refused) - 1} more runs)" if len(refused) > 1 else ""
        raise ConfigMismatchError(refused[0] + more)
    return found


PRETRAINING_REMEDY = "delete it: it is written again (a pretraining summary with its backbone.pt)"
WALL_REMEDY = ('write {"wall_seconds": S} into it, S the seconds of the earlier invocations (compare.log lists each '
               "run's); deleting it counts the wall time from this invocation on, and the reports then understate it")


def read_json(path: str, remedy: str = PRETRAINING_REMEDY):
    with reading(path, remedy), open(path) as handle:
        return json.load(handle)


def accumulated_wall_seconds(out_dir: str, elapsed: float) -> float:
    """Wall time over every invocation on out_dir (an interrupted comparison resumes)."""
    path = os.path.join(out_dir, "wall_seconds.json")
    earlier = 0.0
    if os.path.exists(path):
        recorded = read_json(path, WALL_REMEDY)
        earlier = recorded.get("wall_seconds") if isinstance(recorded, dict) else None
        if isinstance(earlier, bool) or not isinstance(earlier, (int, float)) or not 0 <= earlier < math.inf:
            raise damaged(path, "no number of seconds under wall_seconds", WALL_REMEDY)
    total = elapsed + float(earlier)
    os.makedirs(out_dir, exist_ok=True)
    write_text_atomically(path, json.dumps({"wall_seconds": total}))
    return total


def check_before_training(options, base, cells, seeds) -> None:
    """Every run's flags, --ks against the reports and the evaluation set, and the output
    folder: FlagError naming the flag, before the pretraining or any run trains."""
    missing = [k for k in REPORTED_KS if k not in base.ks]
    if missing:
        raise FlagError(f"--ks must include {' '.join(map(str, REPORTED_KS))}, which the reports tabulate "
                        f"(missing {' '.join(map(str, missing))}; got {' '.join(map(str, base.ks))})")
    for cell in cells:
        for loss in LOSSES:
            try:
                run_config(base, cell, seeds[0], loss).check()
            except FlagError as error:
                if not cell.name:
                    raise
                raise FlagError(f"{error} (the {loss} runs of grid cell {cell.name})") from None
    check_ks_fit(base.ks, searchable_items_of(base), f"the {base.dataset} evaluation set")
    prepare_out_dir(options.out, "--out")
    check_layout(options)


def losses_note(base, cells) -> str:
    """Each compared loss with the settings its runs train with (see-train's: Proxy-Anchor's flags,
    PML's defaults for the others)."""
    losses = dict.fromkeys(cell.base_loss or base.base_loss for cell in cells)
    return "; ".join(LOSS_NAMES[loss] + " " + (f"α={base.alpha}, δ={base.margin}" if loss == "proxy-anchor" else
                                               ", ".join(f"{field.name}={getattr(BASE_SETTINGS[loss](), field.name)}"
                                                         for field in dataclasses.fields(BASE_SETTINGS[loss])))
                     for loss in losses)


def budget_note(base, cells, wall: float) -> str:
    data = f"{base.dataset}" + (f" at {glyphs_protocol(base).image_size} px" if base.dataset == "glyphs" else "")
    if base.dataset == "glyphs" and base.glyphs_train_faces:
        data += f" trained on the faces {', '.join(glyphs_protocol(base).train_faces)}"
    by_classes = sorted({(cell.train_classes, cell.epochs) for cell in cells if cell.epochs})
    epochs = (", ".join(f"{e} epochs at {c} classes" for c, e in by_classes) if by_classes else f"{base.epochs} epochs")
    schedule = schedule_note(base.lr_schedule, [e for _, e in by_classes] or [base.epochs])
    network = (f"small CNN width {base.cnn_width}, stem stride {base.cnn_stem_stride}" if base.backbone == "small_cnn"
               else base.backbone)
    return (f"Budget per run: {epochs} of {data}, each a pass's worth of class-balanced batches of "
            f"{base.batch_size} images ({base.m_per_class} per class); {network}, lr {base.lr}, "
            f"proxy lr {base.proxy_lr}, {schedule}; {losses_note(base, cells)}; SEE n={base.n_expansion}, "
            f"λ={base.lam}, ρ {base.rho_min}→{base.rho_max}. Wall time of the whole comparison so far: "
            f"{wall / 60:.1f} min ({base.threads} thread(s) per run).")


def main(argv=None) -> None:
    """The command: a flag that cannot be trained with ends it, naming the flag, before anything trains."""
    options, train_flags = parse(argv)
    run_command(PROG, lambda: compare(options, train_flags), options.debug)


def compare(options, train_flags) -> None:
    regime = REGIMES[options.regime]
    options.base_losses = losses_to_compare(options, regime)
    base = base_config(regime, train_flags, tuple(options.train_classes or regime.train_classes))
    options.out = options.out or os.path.join("results", base.dataset, options.regime)
    cells = build_cells(options, regime, base, train_flags)
    seeds = range(options.first_seed, options.first_seed + (options.seeds or regime.seeds))
    check_before_training(options, base, cells, seeds)
    can_plot()  # says now, not after the training, when the plots will be left out
    if base.threads:
        torch.set_num_threads(base.threads)  # the pretraining too, not only the runs
    began = time.perf_counter()
    notes, extra = prepare_backbone(options, regime, base)
    plan = [run_config(base, cell, seed, loss) for seed in seeds for cell in cells for loss in LOSSES]
    found = check_folders(plan)
    histories = {cell.name: {loss: {} for loss in LOSSES} for cell in cells}
    extra.update({"config": base.as_dict(), "regime": options.regime,
                  "glyphs_protocol": repr(glyphs_protocol(base)) if base.dataset == "glyphs" else None})

    regime_title = regime.title_for(options.base_losses)

    def report(wall):
        all_notes = notes + [budget_note(base, cells, wall)]
        results = []
        for cell in cells:
            runs = histories[cell.name]
            if set(runs["pa"]) & set(runs["see"]):
                title = regime_title + (f" ({cell.name})" if cell.name else "")
                summary = write_report(cell.directory, runs, title, all_notes, {**extra, "wall_seconds": wall},
                                       cell.base_loss or base.base_loss)
                results.append({"cell": cell, "summary": summary, "histories": runs})
        if cells[0].name:  # a grid, even of one cell
            write_grid_report(options.out, results, regime_title, all_notes, {**extra, "wall_seconds": wall})
        for loss in dict.fromkeys(cell.base_loss for cell in cells if "/" in cell.name):  # a grid per loss
            write_grid_report(os.path.join(options.out, loss), [r for r in results if r["cell"].base_loss == loss],
                              f"{regime_title}: {LOSS_NAMES[loss]}", all_notes, {**extra, "wall_seconds": wall})
        return results

    # Seed by seed over every cell, so that an interrupted grid has every cell at about the
    # same number of seeds.
    for index, config in enumerate(plan):
        cell = cells[(index // len(LOSSES)) % len(cells)]
        epochs_done, history = found.get(config.out_dir, (0, []))
        if epochs_done < config.epochs:
            run_began = time.perf_counter()
            history = train(config)
            log(options.out, f"{cell.name or 'run'} {config.loss} seed {config.seed}: R@1 "
                             f"{100 * history[-1]['recall@1']:.2f} ({time.perf_counter() - run_began:.0f} s)")
        histories[cell.name][config.loss][config.seed] = history
        if config.loss == LOSSES[-1]:
            report(accumulated_wall_seconds(options.out, time.perf_counter() - began))
            began = time.perf_counter()
    for result in report(accumulated_wall_seconds(options.out, time.perf_counter() - began)):
        r1 = result["summary"]["metrics"]["recall@1"]
        log(options.out, f"{result['cell'].name or 'R@1'}: PA {r1['pa']['mean']:.2f} SEE {r1['see']['mean']:.2f} "
                         f"SEE-PA {difference_and_interval(r1['see_minus_pa'])}")


if __name__ == "__main__":
    main()
