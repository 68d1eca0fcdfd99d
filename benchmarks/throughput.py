"""Throughput of the SEE loss: fused kernels vs the reference, the per-sample loops, pml and the matmul floor.

    python benchmarks/throughput.py                 # the five standard shapes, on the CPU
    python benchmarks/throughput.py --device cuda --dtype bfloat16
    python benchmarks/throughput.py --batch 256 --dim 128 --classes 1000
    python benchmarks/throughput.py --config many-classes   # C = 10^6: the fused loss in chunks, and its floor
    python benchmarks/throughput.py --quick         # a few seconds, as CI runs it
    python benchmarks/throughput.py --loss arcface  # a loss module, plain and with SEE (loss_family.py)

Each timing is one forward + backward of the loss. Every repeat runs every
implementation once, in a rotating order, so that drift of the machine hits all
alike. Before timing, each loss is checked against see_cuda.reference; a mismatch
exits with status 1. "original" is the per-sample oracle (tests/oracles), "published"
the same algorithm with the published code's host round-trips (benchmarks/published_see.py).
The many-classes shape (C = 10^6) is too large for an N x C similarity matrix: only the
fused loss, which takes the classes in chunks, and its floor run there, and the fused
loss is checked against itself in one chunk at C = 10^5 (checks.check_chunking).
Without pytorch-metric-learning its column is left out (the output says so).
Writes a table to stdout and a JSON file and a PNG plot to --output-dir
(benchmarks/results by default).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import statistics
import sys

os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # the profiler behind CPU memory figures is chatty
BENCHMARKS_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCHMARKS_DIR)  # run from anywhere, import siblings
sys.path.insert(1, os.path.join(os.path.dirname(BENCHMARKS_DIR), "tests"))  # the per-sample oracle
try:
    import see_cuda  # noqa: F401  (an installed copy wins)
except ImportError:  # a source checkout run without installing
    sys.path.insert(1, os.path.dirname(BENCHMARKS_DIR))

import loss_family  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

import measure  # noqa: E402
import report  # noqa: E402
from checks import check_chunking, check_losses  # noqa: E402
from implementations import ALL, FLOOR, left_out, timed_steps  # noqa: E402
from problems import (  # noqa: E402
    CONFIGS,
    EMBEDDING_PATTERN,
    LABEL_PATTERN,
    MANY_CLASSES_CONFIGS,
    QUICK_CONFIG,
    Shape,
    make_batch,
)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
DEFAULT_RESULTS = os.path.join(BENCHMARKS_DIR, "results")
QUICK_REPEATS, QUICK_WARMUP = 3, 1


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32", help="half types need --device cuda")
    parser.add_argument("--config", action="append", choices=tuple(CONFIGS) + tuple(MANY_CLASSES_CONFIGS),
                        help="shape(s) to run; default the standard ones (all but many-classes)")
    parser.add_argument("--batch", type=int, help="B of a custom shape (replaces the standard ones)")
    parser.add_argument("--dim", type=int, help="D of a custom shape")
    parser.add_argument("--classes", type=int, help="C of a custom shape")
    parser.add_argument("--n-expansion", type=int, default=16, help="synthetic points per expanded sample")
    parser.add_argument("--ratio", type=float, default=0.4, help="fraction of the batch that is expanded")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per implementation (at least 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed repeats first")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random batches")
    parser.add_argument("--chunk-bytes", type=int, help="the fused loss's budget per chunk of classes "
                                                        "(default: the library's, 256 MiB); the floor's chunks follow")
    parser.add_argument("--quick", action="store_true", help="one tiny shape, few repeats: a smoke test")
    parser.add_argument("--output-dir", default=DEFAULT_RESULTS)
    parser.add_argument("--loss", choices=("see",) + tuple(loss_family.LOSSES), default="see",
                        help="see: the SEE loss against every implementation (the default); a loss module's name: "
                             "fused, reference and PML, plain and with SEE (benchmarks/loss_family.py)")
    args = parser.parse_args(argv)
    if args.dtype != "float32" and args.device != "cuda":
        parser.error(f"--dtype {args.dtype} needs --device cuda (the CPU kernels are float32/float64)")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")
    if args.quick:
        args.repeats, args.warmup = QUICK_REPEATS, QUICK_WARMUP
    elif args.repeats < 5:
        parser.error("--repeats must be at least 5 (use --quick for a smoke test)")
    for shape in selected_shapes(args):
        if shape.dim < shape.n_expansion + 1:
            parser.error(f"{shape.name}: D={shape.dim} must be >= n_expansion + 1 = {shape.n_expansion + 1}")
    return args


def selected_shapes(args) -> list:
    if args.quick:
        chosen = [QUICK_CONFIG]
    elif any(v is not None for v in (args.batch, args.dim, args.classes)):
        B, D, C = CONFIGS["CUB-like"]
        chosen = [("custom", (args.batch or B, args.dim or D, args.classes or C))]
    else:
        chosen = [(name, (CONFIGS | MANY_CLASSES_CONFIGS)[name]) for name in (args.config or CONFIGS)]
    return [Shape(name, B, D, C, args.n_expansion, args.ratio) for name, (B, D, C) in chosen]


def run_shape(shape: Shape, args, dtype, progress) -> dict:
    """Check, time (interleaved) and measure every implementation on one shape."""
    batch = make_batch(shape, dtype, args.device, args.seed)
    if shape.many_classes:
        checks = check_chunking(shape, dtype, args.device, args.seed, args.chunk_bytes)
    else:
        checks = check_losses(shape, batch, args.device, args.chunk_bytes)
    names = [name for name in ALL if name == FLOOR or (name in checks and checks[name].timeable)]
    steps = timed_steps(shape, batch, dtype, args.device, names, args.chunk_bytes)
    samples = {name: [] for name in names}
    for repeat in range(args.warmup + args.repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            batch.clear_grads()
            ms = measure.elapsed_ms(steps[name], args.device)
            if repeat >= args.warmup:
                samples[name].append(ms)
            progress.update()
    memory = {}
    for name in names:
        batch.clear_grads()
        memory[name] = measure.peak_memory_bytes(steps[name], args.device)
    return summarise(shape, samples, memory, checks, args.repeats)


def summarise(shape: Shape, samples: dict, memory: dict, checks: dict, repeats: int) -> dict:
    floor = statistics.median(samples[FLOOR])
    implementations = {}
    for name in ALL:
        entry = {"check": checks[name].as_dict()} if name in checks else {}
        if name in samples:
            times = samples[name]
            median = statistics.median(times)
            entry.update(
                median_ms=median, min_ms=min(times), max_ms=max(times), repeats=len(times), times_ms=times,
                ratio_to_floor=median / floor, peak_memory_bytes=memory[name],
            )
        if entry:
            implementations[name] = entry
    medians = {name: statistics.median(times) for name, times in samples.items()}
    speedups = {}
    for fast, slow in (("fused", "reference"), ("fused", "original"), ("fused", "published"),
                       ("reference", "original")):
        if fast in medians and slow in medians:
            speedups[f"{fast}_over_{slow}"] = medians[slow] / medians[fast]
    shape_info = dataclasses.asdict(shape) | {"num_expanded": shape.num_expanded, "num_synthetic": shape.num_synthetic}
    return {"name": shape.name, "shape": shape_info, "repeats": repeats, "implementations": implementations,
            "speedups": speedups}


def output_path(args, extension: str) -> str:
    date = datetime.date.today().isoformat()
    suffix = "_quick" if args.quick else ""
    return os.path.join(args.output_dir, f"throughput_{args.device}_{args.dtype}_{date}{suffix}.{extension}")


def run_settings(args, timed: list, not_run: dict) -> dict:
    return {
        "device": args.device, "dtype": args.dtype, "repeats": args.repeats, "warmup": args.warmup,
        "seed": args.seed, "quick": args.quick, "implementations": timed, "left_out": not_run,
        "chunk_bytes": args.chunk_bytes,
        "timing": "forward+backward per call; median, min and max over the repeats; "
                  "each repeat runs every implementation once, in rotating order",
        "label_pattern": LABEL_PATTERN, "embedding_pattern": EMBEDDING_PATTERN,
        "memory_method": measure.memory_method(args.device),
    }


def run_all(shapes: list, args, num_timed: int) -> list:
    """Results of every shape, each table printed as soon as it is known."""
    results = []
    total = len(shapes) * (args.warmup + args.repeats) * num_timed
    with tqdm(total=total, disable=args.quick, unit="call", leave=False) as progress:
        for shape in shapes:
            results.append(run_shape(shape, args, DTYPES[args.dtype], progress))
            progress.write(report.format_table(results[-1]) + "\n")
    return results


def mismatches(results: list) -> list:
    return [f"{r['name']}/{name}" for r in results for name, entry in r["implementations"].items()
            if entry.get("check", {}).get("status", "").startswith(("MISMATCH", "ERROR"))]


def run_loss_family(args) -> int:
    """A loss module (benchmarks/loss_family.py): every shape, plain and with SEE; JSON beside the others."""
    machine = report.machine_info(args.device)
    results = []
    for shape in selected_shapes(args):
        many = shape.name in MANY_CLASSES_CONFIGS
        for expansion in (None, see_cuda.SphericalExpansion(n_expansion=shape.n_expansion, ratio=shape.ratio)):
            results.append(loss_family.run(args.loss, (shape.batch, shape.dim, shape.classes), expansion,
                                           args.repeats, args.warmup, args.chunk_bytes, args.seed, many))
            print(loss_family.format_table(results[-1]) + "\n", flush=True)
    failed = [r["loss"] for r in results for status in r["checks"].values() if status != "ok"]
    os.makedirs(args.output_dir, exist_ok=True)
    # The many-classes shape is its own file, as for the SEE loss: a run of it must not replace the others'.
    many = "_many-classes" if any(s.name in MANY_CLASSES_CONFIGS for s in selected_shapes(args)) else ""
    path = output_path(args, "json").replace("throughput_", f"throughput_{args.loss}_").replace(
        f"_{args.dtype}_", f"_{args.dtype}{many}_")
    report.write_json({"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine,
                       "memory_method": measure.memory_method(args.device), "results": results,
                       "checks_passed": not failed}, path)
    print(f"wrote {path}")
    return 1 if failed else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.loss != "see":
        return run_loss_family(args)
    machine = report.machine_info(args.device)
    not_run = left_out(args.device)
    timed = [name for name in ALL if name not in not_run]
    settings = run_settings(args, timed, not_run)
    print(report.format_header(machine, settings))
    results = run_all(selected_shapes(args), args, len(timed))
    failed = mismatches(results)
    output = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine,
              "settings": settings, "results": results, "checks_passed": not failed}
    os.makedirs(args.output_dir, exist_ok=True)
    report.write_json(output, output_path(args, "json"))
    report.write_plot(output, output_path(args, "png"))
    print(f"wrote {output_path(args, 'json')} and {output_path(args, 'png')}")
    if failed:
        print(f"\n!!! LOSS MISMATCH or ERROR against see_cuda.reference: {', '.join(failed)} !!!", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
