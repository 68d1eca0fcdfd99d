"""Speed and accuracy of the counter-based normal draws (see_cuda.noise, csrc/philox_normal.h).

    python benchmarks/noise.py                      # 72 x 15 x 512 draws, one thread
    python benchmarks/noise.py --threads 2 --shape 128 15 512
    python benchmarks/noise.py --accuracy 100       # also 100 x 2^20 float32 draws against the reference

Times (median of --repeats, milliseconds) the philox_normal_ op, which fills the
tensor with philox_normal_fill in one chunk per thread, the pure-PyTorch
reference, and torch.randn for comparison. With --accuracy, reports the largest
ulp distance of the op's float32 and float64 draws from the reference and the
bit-identical fraction.
"""
from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time

BENCHMARKS_DIR = os.path.dirname(os.path.abspath(__file__))
try:
    import see_cuda  # noqa: F401  (an installed copy wins)
except ImportError:  # a source checkout run without installing
    sys.path.insert(0, os.path.dirname(BENCHMARKS_DIR))

import torch  # noqa: E402

from see_cuda import noise, ops  # noqa: E402


def median_ms(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def ulp_distance(a, b):
    int_type = torch.int32 if a.dtype == torch.float32 else torch.int64
    bits_a, bits_b = a.view(int_type).to(torch.int64), b.view(int_type).to(torch.int64)
    mask = torch.iinfo(int_type).max
    ordered_a = torch.where(bits_a < 0, -(bits_a & mask), bits_a)
    ordered_b = torch.where(bits_b < 0, -(bits_b & mask), bits_b)
    return (ordered_a - ordered_b).abs()


def accuracy(dtype, chunks, chunk_size=1 << 20):
    worst, identical = 0, 0
    for chunk in range(chunks):
        seed = torch.tensor(1_000_003 * chunk + 1, dtype=torch.int64)
        distance = ulp_distance(ops.philox_normal(seed, (chunk_size,), dtype),
                                noise.philox_normal(seed, (chunk_size,), dtype))
        worst = max(worst, int(distance.max()))
        identical += int((distance == 0).sum())
    return worst, identical / (chunks * chunk_size)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs="+", default=[72, 15, 512])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=51)
    parser.add_argument("--accuracy", type=int, default=0, metavar="CHUNKS", help="chunks of 2^20 draws per dtype")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shape = tuple(args.shape)
    seed = noise.draw_seed(torch.Generator().manual_seed(0), "cpu")
    print(f"{torch.Size(shape).numel()} draws {shape}, {args.threads} thread(s), median of {args.repeats}")
    reference_repeats = max(3, args.repeats // 10)
    for dtype in (torch.float32, torch.float64):
        name = str(dtype).replace("torch.", "")
        timed = {
            "philox_normal_ op": (functools.partial(ops.philox_normal, seed, shape, dtype), args.repeats),
            "torch.randn": (functools.partial(torch.randn, shape, dtype=dtype), args.repeats),
            "reference (torch)": (functools.partial(noise.philox_normal, seed, shape, dtype), reference_repeats),
        }
        for label, (fn, repeats) in timed.items():
            print(f"  {label:18s} {name:8s} {median_ms(fn, repeats):8.3f} ms")
    for dtype in (torch.float32, torch.float64) if args.accuracy else ():
        worst, identical = accuracy(dtype, args.accuracy)
        print(f"  {dtype} vs reference over {args.accuracy} x 2^20 draws: max {worst} ulp, "
              f"{100 * identical:.5f}% bit-identical")


if __name__ == "__main__":
    main()
