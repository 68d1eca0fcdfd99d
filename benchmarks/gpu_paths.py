"""Forward + backward of the SEE loss on a GPU, path by path, beside the cuBLAS floor of its products.

Per shape (B, D, C), with n = 16 and 40% of the batch expanded:

- one-call fp32: `fused_see_loss` with check_values=False, the one-call CUDA op
  (flash-style loss, split-tf32 tensor-core products: float32's accuracy);
- one-call fp32 checked: the same with its defaults (check_values=True: the kernels'
  flags copied to the host without waiting);
- one-call tf32 / bf16 products: products="tf32" (one tf32 product instead of three) or
  "bf16" (bf16 tensor cores);
- one-call bf16: the same on bfloat16 embeddings and proxies (the op works in float32);
- composed fp32: the composition of the expansion op and the Proxy-Anchor op
  (`see_cuda.composition`, cuBLAS products), the path CUDA took before the one-call op;
- composed tf32: the same with torch.backends.cuda.matmul.allow_tf32 = True;
- floor fp32 / tf32 / bf16: the loss's three matrix products alone, as cuBLAS runs them
  (`implementations.fused_loss_products`), on the N = B + k n rows.

Medians of `--repeats` timed calls after `--warmup`, between CUDA events. The
table goes to standard output (scripts/gpu_check.sh keeps it in run.log);
`--output-json` writes the figures too. `--device cpu --quick` is the dry run:
tiny shapes, the CPU kernels, no tf32 or bf16 rows.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

BENCHMARKS_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCHMARKS_DIR)  # run from anywhere, import siblings
sys.path.insert(1, os.path.join(os.path.dirname(BENCHMARKS_DIR), "tests"))  # what implementations imports

import torch  # noqa: E402

import see_cuda  # noqa: E402
from see_cuda import composition, dispatch  # noqa: E402
from see_cuda.options import SEEOptions  # noqa: E402

from implementations import fused_loss_products  # noqa: E402
from measure import elapsed_ms  # noqa: E402

SHAPES = {"CUB-like": (180, 512, 100), "SOP-like": (180, 128, 11318), "10^6 classes": (180, 128, 1_000_000)}
QUICK_SHAPES = {"tiny": (12, 32, 50), "tiny, many classes": (12, 32, 3000)}
OPTIONS = SEEOptions(n_expansion=16, lam=0.2, ratio=0.4)


def inputs(B, D, C, dtype, device):
    generator = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(B, D, generator=generator, device=device).to(dtype).requires_grad_()
    proxies = torch.randn(C, D, generator=generator, device=device).to(dtype).requires_grad_()
    labels = torch.randint(0, C, (B,), generator=generator, device=device)
    return x, labels, proxies


def one_call_step(B, D, C, dtype, device, products="float32", check_values=False):
    x, labels, proxies = inputs(B, D, C, dtype, device)
    generator = torch.Generator(device=device).manual_seed(1)
    return lambda: see_cuda.fused_see_loss(x, labels, proxies, options=OPTIONS, generator=generator,
                                           check_values=check_values, products=products).backward()


def one_call_checked_step(B, D, C, dtype, device):
    return one_call_step(B, D, C, dtype, device, check_values=True)


def one_call_tf32_step(B, D, C, dtype, device):
    return one_call_step(B, D, C, dtype, device, products="tf32")


def one_call_bf16_products_step(B, D, C, dtype, device):
    return one_call_step(B, D, C, dtype, device, products="bf16")


def composed_step(B, D, C, dtype, device):
    x, labels, proxies = inputs(B, D, C, dtype, device)
    generator = torch.Generator(device=device).manual_seed(1)
    primitives = dispatch.plan("fused", torch.device(device), OPTIONS.loss).primitives
    return lambda: composition.see_loss(x, labels, proxies, OPTIONS.expansion, OPTIONS.loss, primitives,
                                        generator)[0].backward()


def floor_step(B, D, C, dtype, device):
    k = round(B * OPTIONS.ratio)
    generator = torch.Generator(device=device).manual_seed(0)
    X = torch.randn(B + k * OPTIONS.n_expansion, D, generator=generator, device=device).to(dtype)
    P = torch.randn(C, D, generator=generator, device=device).to(dtype)
    return lambda: fused_loss_products(X, P, B, C)


def paths(device):
    """name -> (step factory, dtype, allow_tf32) of the rows this device runs."""
    rows = {"one-call fp32": (one_call_step, torch.float32, False),
            "one-call fp32 checked": (one_call_checked_step, torch.float32, False),
            "one-call tf32": (one_call_tf32_step, torch.float32, False),
            "one-call bf16 products": (one_call_bf16_products_step, torch.float32, False),
            "composed fp32": (composed_step, torch.float32, False),
            "floor fp32": (floor_step, torch.float32, False)}
    if device == "cuda":
        rows.update({"one-call bf16": (one_call_step, torch.bfloat16, False),
                     "composed tf32": (composed_step, torch.float32, True),
                     "floor tf32": (floor_step, torch.float32, True),
                     "floor bf16": (floor_step, torch.bfloat16, False)})
    return rows


def median_ms(step, device, repeats, warmup):
    for _ in range(warmup):
        step()
    return statistics.median(elapsed_ms(step, device) for _ in range(repeats))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, for a dry run")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--output-json", default=None)
    args = parser.parse_args(argv)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    rows = paths(args.device)
    tf32_before = torch.backends.cuda.matmul.allow_tf32
    results = {}
    print("| shape (B, D, C) | " + " | ".join(f"{name} ms" for name in rows) + " |")
    print("| --- |" + " --- |" * len(rows))
    for label, (B, D, C) in shapes.items():
        results[label] = {}
        for name, (factory, dtype, tf32) in rows.items():
            torch.backends.cuda.matmul.allow_tf32 = tf32
            try:
                results[label][name] = median_ms(factory(B, D, C, dtype, args.device), args.device, args.repeats,
                                                 args.warmup)
            except torch.cuda.OutOfMemoryError as error:  # recorded, not hidden
                results[label][name] = f"out of memory: {str(error).splitlines()[0]}"
            finally:
                torch.backends.cuda.matmul.allow_tf32 = tf32_before
            if args.device == "cuda":
                torch.cuda.empty_cache()
        cells = [f"{v:.3f}" if isinstance(v, float) else v for v in results[label].values()]
        print(f"| {label} ({B}, {D}, {C}) | " + " | ".join(cells) + " |", flush=True)
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump({"device": args.device, "repeats": args.repeats, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
