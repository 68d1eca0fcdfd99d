"""PA against PA + SEE on Glyphs over paired seeds, with the same budget for both.

    python -m see_cuda.train.compare --regime scratch --seeds 3 --out results/glyphs/scratch
    python -m see_cuda.train.compare --regime pretrained --seeds 3 --out results/glyphs/pretrained

Any further flag is a `python -m see_cuda.train` flag applied to every run
(e.g. --epochs 8). Runs are resumed from their checkpoints, so an interrupted
comparison continues where it stopped. Writes summary.md, summary.json and
recall_at_1.png under --out, and each run's metrics under --out/runs/.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import time

import torch

from .cli import parse_config
from .data import glyphs_protocol
from .metrics_log import write_atomically
from .pretrain import pretrain_backbone
from .report import write_report
from .run import train

# Budgets sized for a shared 2-core CPU (~0.6 s per batch of 120 at width 8):
# a regime's whole comparison in about 10-15 minutes.
REGIMES = {
    "scratch": {"flags": ["--epochs", "5", "--cnn-width", "8", "--lr", "1e-3"],
                "title": "Glyphs, small CNN from scratch: PA vs PA + SEE"},
    # The calibration budget of docs/glyphs.md (330 steps) with a cheaper, strided CNN.
    "scratch-long": {"flags": ["--epochs", "10", "--cnn-width", "16", "--cnn-stem-stride", "2", "--lr", "1e-3"],
                     "title": "Glyphs, strided small CNN from scratch, 330 steps: PA vs PA + SEE"},
    "pretrained": {"flags": ["--epochs", "4", "--cnn-width", "8", "--lr", "5e-4"],
                   "title": "Glyphs, small CNN pretrained on disjoint characters: PA vs PA + SEE"},
}


def parse(argv=None):
    parser = argparse.ArgumentParser(prog="python -m see_cuda.train.compare", description=__doc__.split("\n")[0])
    parser.add_argument("--regime", choices=tuple(REGIMES), default="scratch")
    parser.add_argument("--seeds", type=int, default=3, help="paired seeds 0..N-1 (from --first-seed)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="default results/glyphs/<regime>")
    parser.add_argument("--pretrain-epochs", type=int, default=12)
    # ~500 classes after the retrieval characters are removed: few enough to learn in minutes.
    parser.add_argument("--pretrain-characters", type=int, default=560)
    options, train_flags = parser.parse_known_args(argv)
    options.out = options.out or os.path.join("results", "glyphs", options.regime)
    return options, train_flags


def accumulated_wall_seconds(out_dir: str, elapsed: float) -> float:
    """Wall time over every invocation on out_dir (an interrupted comparison resumes)."""
    path = os.path.join(out_dir, "wall_seconds.json")
    total = elapsed + (json.load(open(path))["wall_seconds"] if os.path.exists(path) else 0.0)
    write_atomically(path, json.dumps({"wall_seconds": total}))
    return total


def main(argv=None) -> None:
    options, train_flags = parse(argv)
    regime = REGIMES[options.regime]
    base = parse_config(regime["flags"] + ["--threads", "1", "--no-progress"] + train_flags)
    base.dataset, base.resume = "glyphs", True
    torch.set_num_threads(base.threads)  # the pretraining too, not only the runs
    began = time.perf_counter()
    notes, extra = [], {}
    if options.regime == "pretrained":
        weights = os.path.join(options.out, "pretrain", "backbone.pt")
        if not os.path.exists(weights):
            summary = pretrain_backbone(weights, options.pretrain_characters, options.pretrain_epochs,
                                        width=base.cnn_width, progress=False)
            print(f"pretrained on {summary['characters']} disjoint characters in {summary['wall_seconds']:.0f} s", flush=True)
        base.backbone_weights = weights
        pretraining = json.load(open(os.path.splitext(weights)[0] + ".json"))
        extra["pretraining"] = pretraining
        notes.append(f"Backbone pretrained once by cross-entropy on {pretraining['characters']} CJK ideographs absent "
                     f"from the retrieval split ({pretraining['epochs']} epochs, final training accuracy "
                     f"{pretraining['history'][-1]['train_accuracy']:.0%}, {pretraining['wall_seconds'] / 60:.1f} min; "
                     f"pretrain/backbone.json), then fine-tuned by every run.")
    histories = {"pa": {}, "see": {}}
    for seed in range(options.first_seed, options.first_seed + options.seeds):
        for loss in ("pa", "see"):
            config = copy.deepcopy(base)
            config.seed, config.loss = seed, loss
            config.out_dir = os.path.join(options.out, "runs", f"{loss}-seed{seed}")
            run_began = time.perf_counter()
            histories[loss][seed] = train(config)
            print(f"{loss} seed {seed}: R@1 {100 * histories[loss][seed][-1]['recall@1']:.2f} "
                  f"({time.perf_counter() - run_began:.0f} s)", flush=True)
    wall = accumulated_wall_seconds(options.out, time.perf_counter() - began)
    notes.append(f"Budget per run: {base.epochs} epochs, each a pass's worth of class-balanced batches of "
                 f"{base.batch_size} images ({base.m_per_class} per class); small CNN width {base.cnn_width}, "
                 f"{base.embedding_size}-d, lr {base.lr}, proxy lr {base.proxy_lr}; SEE n={base.n_expansion}, "
                 f"λ={base.lam}, ρ {base.rho_min}→{base.rho_max}. Wall time of the whole comparison: "
                 f"{wall / 60:.1f} min, one thread per run, on a shared 2-core CPU.")
    extra.update({"config": base.as_dict(), "wall_seconds": wall, "regime": options.regime,
                  "glyphs_protocol": repr(glyphs_protocol(base))})
    summary = write_report(options.out, histories, regime["title"], notes, extra)
    r1 = summary["metrics"]["recall@1"]
    print(f"R@1 PA {r1['pa']['mean']:.2f} SEE {r1['see']['mean']:.2f} SEE-PA {r1['see_minus_pa']['mean']:+.2f} "
          f"[{r1['see_minus_pa']['low']:+.2f}, {r1['see_minus_pa']['high']:+.2f}]; wall {wall:.0f} s")


if __name__ == "__main__":
    main()
