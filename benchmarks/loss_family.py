"""Throughput of a loss module, plain and with SEE: the fused kernels, the reference and
pytorch-metric-learning, against the fused loss's own products floor.

Run through `benchmarks/throughput.py --loss arcface` (or proxy-nca, normalized-softmax,
cosface, or proxy-anchor: see_cuda.ProxyAnchorLoss against PML's). Each timing is one
forward + backward; every repeat runs every implementation once, in rotating order.
Before timing, the fused loss and PML's are checked against the reference (relative
1e-4 in float32); a mismatch exits with status 1. The floor is the fused loss's matrix
products at its chunk width: the cosines (formed twice by the softmax family, once in
each of its passes; once by Proxy-Anchor), dL/dP = G^T X and dL/dX = G P. At 10^6
classes only the fused loss and its floor run: PML's N x C matrices do not fit. Peak
memory: benchmarks/measure.py's method.
"""
from __future__ import annotations

import statistics

import torch

import see_cuda
from see_cuda.share import DEFAULT_CHUNK_BYTES, classes_per_chunk

import measure

# name -> (module, PML's parameter, cosine products per chunk: the softmax family forms them twice)
LOSSES = {
    "proxy-anchor": ("ProxyAnchorLoss", "proxies", 1),
    "proxy-nca": ("ProxyNCALoss", "proxies", 2),
    "normalized-softmax": ("NormalizedSoftmaxLoss", "W", 2),
    "cosface": ("CosFaceLoss", "W", 2),
    "arcface": ("ArcFaceLoss", "W", 2),
}
CHECK_RTOL = 1e-4


def losses_of(loss: str, C: int, D: int, expansion, chunk_bytes, with_pml: bool) -> dict:
    """name -> module, sharing one parameter (PML's, loaded into ours)."""
    class_name = LOSSES[loss][0]
    ours = {impl: getattr(see_cuda, class_name)(C, D, expansion=expansion, implementation=impl, chunk_bytes=chunk_bytes,
                                                generator=torch.Generator().manual_seed(0))
            for impl in ("fused", "reference")}
    ours["reference"].load_state_dict(ours["fused"].state_dict())
    if with_pml and expansion is None:
        from pytorch_metric_learning import losses as pml_losses

        pml = getattr(pml_losses, class_name)(C, D)
        pml.load_state_dict(ours["fused"].state_dict())
        ours["pml"] = pml
    return ours


def seeded(module):
    """The module with its generator (if any) back at seed 0: every check draws the same synthetic points."""
    if getattr(module, "generator", None) is not None:
        module.generator.manual_seed(0)
    return module


def floor_step(x, W_classes, rows: int, chunk_bytes, cosine_products: int):
    """The fused loss's products: per chunk, its N x chunk x D cosine products and two gradient products."""
    width = min(W_classes.shape[0], classes_per_chunk(rows, x.dtype, chunk_bytes or DEFAULT_CHUNK_BYTES))
    X = torch.nn.functional.normalize(torch.randn(rows, x.shape[1]), dim=1)

    def step():
        grad_x = torch.zeros_like(X)
        for chunk in W_classes.detach().split(width):
            for _ in range(cosine_products):
                G = torch.mm(X, chunk.t())
            torch.mm(G.t(), X)
            grad_x.addmm_(G, chunk)
    return step


def run(loss: str, shape, expansion, repeats: int, warmup: int, chunk_bytes, seed: int, many_classes: bool) -> dict:
    B, D, C = shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, D, generator=g).requires_grad_()
    y = torch.randint(0, C, (B,), generator=g)
    modules = losses_of(loss, C, D, expansion, chunk_bytes, with_pml=not many_classes)
    if many_classes:
        modules.pop("reference")
    checks = {}
    if not many_classes:
        with torch.no_grad():
            expected = float(seeded(modules["reference"])(x, y))
            for name, module in modules.items():
                value = float(seeded(module)(x, y))
                checks[name] = "ok" if abs(value - expected) <= CHECK_RTOL * abs(expected) else \
                    f"MISMATCH {value:.6g} vs {expected:.6g}"
    rows = B + (modules["fused"].last_stats.num_synthetic if modules["fused"].last_stats else 0)
    if modules["fused"].last_stats is None:
        modules["fused"](x, y)
        rows = B + modules["fused"].last_stats.num_synthetic
    classes = next(modules["fused"].parameters())
    classes = classes.t() if LOSSES[loss][1] == "W" else classes
    steps = {name: (lambda m=module: m(x, y).backward()) for name, module in modules.items()}
    steps["floor"] = floor_step(x, classes, rows, chunk_bytes, LOSSES[loss][2])
    samples = {name: [] for name in steps}
    names = list(steps)
    for repeat in range(warmup + repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            x.grad = None
            for module in modules.values():
                module.zero_grad(set_to_none=True)
            ms = measure.elapsed_ms(steps[name], "cpu")
            if repeat >= warmup:
                samples[name].append(ms)
    result = {"loss": loss, "shape": {"batch": B, "dim": D, "classes": C, "rows": rows},
              "expansion": None if expansion is None else vars(expansion) | {}, "checks": checks, "implementations": {}}
    for name in names:
        x.grad = None
        result["implementations"][name] = {"median_ms": statistics.median(samples[name]), "times_ms": samples[name],
                                           "peak_memory_bytes": measure.peak_memory_bytes(steps[name], "cpu")}
    floor = result["implementations"]["floor"]["median_ms"]
    for entry in result["implementations"].values():
        entry["ratio_to_floor"] = entry["median_ms"] / floor
    return result


def format_table(result: dict) -> str:
    shape = result["shape"]
    see = "SEE" if result["expansion"] else "plain"
    lines = [f"{result['loss']} ({see}) B={shape['batch']} D={shape['dim']} C={shape['classes']} N={shape['rows']}",
             f"  {'implementation':<12}{'median ms':>11}{'x floor':>9}{'peak MB':>10}  check"]
    for name, entry in result["implementations"].items():
        peak = entry["peak_memory_bytes"]
        memory = f"{peak / 2**20:.1f}" if peak is not None else "n/a"
        lines.append(f"  {name:<12}{entry['median_ms']:>11.1f}{entry['ratio_to_floor']:>9.2f}{memory:>10}  "
                     f"{result['checks'].get(name, '')}")
    return "\n".join(lines)
