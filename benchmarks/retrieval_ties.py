"""Time of `evaluate_retrieval` on a collapsed model (every embedding the same) against random embeddings.

    python benchmarks/retrieval_ties.py                        # 16,000 rows of 128, 3 repeats
    python benchmarks/retrieval_ties.py --rows 8000 --dim 32 --threads 1

When every score ties, the tie policy (equal scores rank by gallery index) decides
every ranking; it must not cost more than ranking distinct scores. The two inputs
share their labels, and their timings are interleaved so that a change of load hits
both alike. Prints the medians and their ratio; the exit status is 1 when the tied
input takes more than --max-ratio times the random one.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)  # this checkout's see_cuda, whichever copy is installed

import numpy as np  # noqa: E402
import torch  # noqa: E402

from see_cuda.evaluation import evaluate_retrieval  # noqa: E402


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=16_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--classes", type=int, default=2_000, help="labels drawn uniformly from this many")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--max-ratio", type=float, default=2.0)
    options = parser.parse_args(argv)
    for name in ("rows", "dim", "classes", "repeats", "threads"):
        value = getattr(options, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be >= 1, got {value}")
    if options.rows < 2:
        parser.error("--rows must be >= 2")
    return options


def seconds(embeddings, labels, use_gpu: bool) -> float:
    if use_gpu:
        torch.cuda.synchronize()
    began = time.perf_counter()
    evaluate_retrieval(embeddings, labels, use_gpu=use_gpu)
    return time.perf_counter() - began


def main(argv=None) -> int:
    options = parse(argv)
    if options.threads:
        torch.set_num_threads(options.threads)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, options.classes, options.rows)
    labels[1] = labels[0]  # at least one query with something to find
    inputs = {
        "random": rng.standard_normal((options.rows, options.dim)).astype(np.float32),
        "tied": np.tile(rng.standard_normal(options.dim).astype(np.float32), (options.rows, 1)),
    }
    use_gpu = options.device == "cuda"
    for embeddings in inputs.values():  # warm-up, and a check that both run
        seconds(embeddings[:64], labels[:64], use_gpu)
    times = {name: [] for name in inputs}
    for _ in range(options.repeats):
        for name, embeddings in inputs.items():
            times[name].append(seconds(embeddings, labels, use_gpu))
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["tied"] / medians["random"]
    print(f"evaluate_retrieval, {options.rows} x {options.dim} float32, {options.classes} classes, "
          f"{options.device}, {torch.get_num_threads()} thread(s), median of {options.repeats}:")
    for name, values in times.items():
        print(f"  {name:7s} {medians[name]:8.3f} s  (min {min(values):.3f}, max {max(values):.3f})")
    verdict = "ok" if ratio <= options.max_ratio else f"SLOW: above {options.max_ratio}"
    print(f"  tied / random: {ratio:.2f} ({verdict})")
    return 0 if ratio <= options.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
