"""Every kernel once, forward and backward, on shapes that reach each of its code paths: the run sanitizers watch.

    python scripts/cuda_smoke.py --device cuda     # also under compute-sanitizer (scripts/gpu_check.sh)
    python scripts/cuda_smoke.py --device cpu      # the same calls on the CPU kernels

Calls the operator layer (see_cuda.ops) in float32 and float64, plus the
public SEE loss, on small shapes chosen for the CUDA kernels' branches: the
expansion's scratch in shared memory under 48 KB, in shared memory above
48 KB (the opt-in limit), and in global memory (the frame alone, and
everything); D not a multiple of 32 and below one block of threads; n = 1;
k = 0; Proxy-Anchor over several row chunks, in chunks of classes, for a
shard of the classes, with no synthetic rows, with a large α (the exact
column-extremum pass), with an out-of-range label; slerp
at θ = 0 and at the antipode; the Philox stream over several blocks with a
count not a multiple of 4; the Max-Mahalanobis centers; the one-call SEE loss
where the device has it. Each case synchronises, so an asynchronous fault is
reported against the case that caused it.

A case checks only what any correct run must show (shapes, finite values from
finite inputs, unit synthetic points and slerp outputs, the simplex's inner
products, NaN for an out-of-range label, draws equal to the stream's
statement); agreement with the reference is the test suite's job. Exits 1 if a
case fails.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)  # this checkout's see_cuda, built in place

import torch  # noqa: E402

import see_cuda  # noqa: E402
from see_cuda import noise, ops, softmax_fused, softmax_reference  # noqa: E402
from see_cuda._extension import has_kernel  # noqa: E402

DTYPES = {"float32": torch.float32, "float64": torch.float64}
# How far from 1 a unit vector may be: loose bounds, for a smoke run (the tests hold the tight ones).
UNIT_TOL = {torch.float32: 1e-3, torch.float64: 1e-8}
ALPHA, MARGIN, LAM = 32.0, 0.1, 0.2
# Above 2·α·1.01 = 80 (float32) and 700 (float64) the Proxy-Anchor kernels find exact column extrema first.
LARGE_ALPHA = 400.0

# (label, k, n, D) of the expansion cases. Scratch per source, in elements: frame (n+1)·D forward,
# (2n+2)·D backward; coefficients ~n² (about 1.5·n² backward). The opt-in shared memory of
# sm_90 is 227 KB per block, the default limit 48 KB.
EXPANSION_CASES = [
    ("scratch in shared memory under 48 KB", 5, 16, 97),
    ("scratch in shared memory above 48 KB (float64 backward: frame in global)", 3, 16, 999),
    ("frame in global memory, coefficients in shared", 2, 16, 4001),
    ("frame and coefficients in global memory", 2, 256, 301),
    ("n = 1 (no draws)", 4, 1, 33),
    ("D below one block of threads", 3, 4, 20),
    ("k = 0", 0, 4, 40),
]
# (label, B, C, D, m, alpha, synthetic_grad) of the Proxy-Anchor cases.
PROXY_ANCHOR_CASES = [
    ("basic", 40, 13, 97, 64, ALPHA, False),
    ("gradient of the synthetic rows", 40, 13, 97, 64, ALPHA, True),
    ("no synthetic rows", 40, 13, 97, 0, ALPHA, False),
    ("several row chunks", 600, 10, 40, 1000, ALPHA, True),
    ("C not a multiple of the column tile", 64, 1000, 64, 128, ALPHA, False),
    ("large alpha: exact column extrema", 40, 13, 97, 64, LARGE_ALPHA, True),
    ("one row", 1, 5, 33, 1, ALPHA, False),
]
# (label, B, C, D, m, the op's shard and chunk arguments) of the class-chunk cases.
PROXY_ANCHOR_CHUNK_CASES = [
    ("one class per chunk", 40, 13, 97, 64, dict(chunk_bytes=1)),
    ("several chunks, the last one short", 64, 1000, 64, 128, dict(chunk_bytes=192 * 4 * 300)),
    ("a shard of the classes, labels outside it", 40, 13, 97, 64, dict(class_offset=5, total_classes=40)),
    ("a shard in chunks", 64, 500, 64, 128, dict(class_offset=1000, total_classes=3000, chunk_bytes=192 * 4 * 70)),
]


class CaseFailure(AssertionError):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CaseFailure(message)


def all_finite(*tensors) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors if t is not None)


def generator_for(device: str, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def randn(*shape, dtype, device, seed, requires_grad=False):
    t = torch.randn(*shape, dtype=dtype, device=device, generator=generator_for(device, seed))
    return t.requires_grad_(requires_grad)


def labels_for(count: int, C: int, device: str, seed: int) -> torch.Tensor:
    return torch.randint(0, C, (count,), device=device, generator=generator_for(device, seed))


# ---------------------------------------------------------------- the cases
def expansion_case(device, dtype, k, n, D):
    z = randn(k, D, dtype=dtype, device=device, seed=1, requires_grad=True)
    w = randn(k, D, dtype=dtype, device=device, seed=2)
    draws = randn(k, n - 1, D, dtype=dtype, device=device, seed=3)
    out = ops.spherical_expansion(z, w, draws)
    expect(out.shape == (k, n, D), f"output shape {tuple(out.shape)}")
    expect(all_finite(out), "non-finite synthetic points")
    if k:
        distance = float((out.detach().norm(dim=-1) - 1).abs().max())
        expect(distance <= UNIT_TOL[dtype], f"synthetic points off the unit sphere by {distance:.2e}")
    weights = randn(k, n, D, dtype=dtype, device=device, seed=4)
    (out * weights).sum().backward()
    expect(z.grad is not None and z.grad.shape == z.shape and all_finite(z.grad), "dL/dz missing or non-finite")


def proxy_anchor_case(device, dtype, B, C, D, m, alpha, synthetic_grad, bad_label=False, **shard):
    x = randn(B, D, dtype=dtype, device=device, seed=5, requires_grad=True)
    proxies = randn(C, D, dtype=dtype, device=device, seed=6, requires_grad=True)
    synthetic = randn(m, D, dtype=dtype, device=device, seed=7, requires_grad=synthetic_grad)
    total = shard.get("total_classes") or C  # labels are global: a shard's rows include other classes'
    labels = labels_for(B, total, device, seed=8)
    synthetic_labels = labels_for(m, total, device, seed=9)
    if bad_label:
        labels[0], synthetic_labels[-1] = total, -1
    try:
        loss = ops.proxy_anchor_fused(x, labels, proxies, synthetic, synthetic_labels, alpha, MARGIN, LAM,
                                      synthetic_grad, **shard)
    except ValueError as error:  # the CPU kernels check label range (the CUDA ones must give NaN instead)
        expect(bad_label and device == "cpu" and "labels" in str(error), f"unexpected error: {error}")
        return
    loss.backward()
    grads = [x.grad, proxies.grad] + ([synthetic.grad] if synthetic_grad and m else [])
    expect(all(g is not None for g in grads), "a gradient is missing")
    if bad_label:
        expect(bool(torch.isnan(loss)), f"loss {float(loss.detach())} for an out-of-range label, expected NaN")
        return
    expect(all_finite(loss, *grads), f"non-finite loss ({float(loss.detach())}) or gradient")


def softmax_family_case(device, dtype, B, C, D, m, chunk_bytes, bad_label=False):
    """ArcFace with synthetic rows by the two softmax-family ops, class vectors as PML's D x C W read as W.t()."""
    x = randn(B, D, dtype=dtype, device=device, seed=13, requires_grad=True)
    W = randn(D, C, dtype=dtype, device=device, seed=14, requires_grad=True)
    synthetic = randn(m, D, dtype=dtype, device=device, seed=15)
    labels, synthetic_labels = labels_for(B, C, device, seed=16), labels_for(m, C, device, seed=17)
    if bad_label:
        labels[0] = C  # no class: the row's target is never found, and the loss is NaN
    logit_map = see_cuda.ArcFaceSettings().logit_map
    loss = softmax_fused.fused_softmax_family(x, labels, W.t(), synthetic, synthetic_labels, LAM, logit_map,
                                              chunk_bytes)
    loss.backward()
    if bad_label:
        expect(bool(torch.isnan(loss)), f"loss {float(loss.detach())} for an out-of-range label, expected NaN")
        return
    expect(all_finite(loss, x.grad, W.grad), f"non-finite loss ({float(loss.detach())}) or gradient")
    if dtype == torch.float64:
        want = softmax_reference.softmax_family_loss_with_synthetic(x.detach(), labels, W.detach().t(), synthetic,
                                                                    synthetic_labels, LAM, logit_map)
        error = abs(float(loss.detach() - want)) / abs(float(want))
        expect(error <= 1e-10, f"loss off the reference by {error:.2e} (relative)")


def slerp_case(device, dtype, R, D):
    a = randn(R, D, dtype=dtype, device=device, seed=10)
    b = randn(R, D, dtype=dtype, device=device, seed=11)
    with torch.no_grad():
        b[:3] = -a[:3]  # antipodes: the fixed half circle
        b[3:5] = a[3:5]  # θ = 0
        b[5] = a[5] + 1e-7 * b[5]  # θ → 0
    a.requires_grad_()
    b.requires_grad_()
    t = torch.rand(R, dtype=dtype, device=device, generator=generator_for(device, 12))
    with torch.no_grad():
        t[0], t[1] = 0.0, 1.0
    t.requires_grad_()
    out = ops.slerp(a, b, t)
    expect(out.shape == (R, D) and all_finite(out), "slerp output: wrong shape or non-finite")
    distance = float((out.detach().norm(dim=-1) - 1).abs().max())
    expect(distance <= UNIT_TOL[dtype], f"slerp output off the unit sphere by {distance:.2e}")
    (out * randn(R, D, dtype=dtype, device=device, seed=13)).sum().backward()
    expect(all_finite(a.grad, b.grad, t.grad), "non-finite slerp gradient")


def philox_case(device, dtype, count):
    seed = torch.tensor(20260101, dtype=torch.int64, device=device)
    draws = ops.philox_normal(seed, (count,), dtype)
    expect(draws.shape == (count,) and all_finite(draws), "draws: wrong shape or non-finite")
    head = min(count, 4099)  # the statement in PyTorch is slow: compare a prefix
    statement = noise.philox_normal(seed, (head,), dtype)
    tolerance = {torch.float32: 1e-5, torch.float64: 1e-12}[dtype]  # 1 ulp (float32), a few (float64)
    error = float((draws[:head] - statement).abs().max())
    expect(error <= tolerance, f"draws differ from the stream's statement by {error:.2e}")


def mmd_centers_case(device, dtype, num_centers, dim, radius):
    centers = ops.mmd_centers(num_centers, dim, radius, device)
    expect(centers.shape == (num_centers, dim) and all_finite(centers), "centers: wrong shape or non-finite")
    gram = centers @ centers.t()
    expected = torch.full_like(gram, -radius**2 / (num_centers - 1))
    expected.fill_diagonal_(radius**2)
    error = float((gram - expected).abs().max())
    expect(error <= 1e-10 * radius**2, f"inner products off the simplex's by {error:.2e}")


def see_loss_fused_case(device, dtype, given_noise, num_selected, products="float32"):
    B, C, D, n = 40, 13, 97, 16
    x = randn(B, D, dtype=dtype, device=device, seed=14, requires_grad=True)
    proxies = randn(C, D, dtype=dtype, device=device, seed=15, requires_grad=True)
    labels = labels_for(B, C, device, seed=16)
    draws = randn(B, n - 1, D, dtype=dtype, device=device, seed=17) if given_noise else None
    seed = torch.tensor(7, dtype=torch.int64, device=device)
    loss, k, _, _ = ops.see_loss_fused(x, labels, proxies, draws, seed, n, num_selected, 0.0, LAM, ALPHA, MARGIN,
                                       products=products)
    loss.backward()
    expect(all_finite(loss, x.grad, proxies.grad), "non-finite loss or gradient")
    expect(num_selected is None or int(k) == num_selected, f"{int(k)} rows expanded, expected {num_selected}")


def public_loss_case(device, dtype, detach_synthetic, check_values):
    B, C, D = 48, 11, 70
    x = randn(B, D, dtype=dtype, device=device, seed=18, requires_grad=True)
    proxies = randn(C, D, dtype=dtype, device=device, seed=19, requires_grad=True)
    labels = labels_for(B, C, device, seed=20)
    loss = see_cuda.fused_see_loss(x, labels, proxies, n_expansion=8, detach_synthetic=detach_synthetic,
                                   generator=generator_for(device, 21), implementation="fused",
                                   check_values=check_values)
    loss.backward()
    expect(all_finite(loss, x.grad, proxies.grad), "non-finite loss or gradient")


def cases(device: str, dtypes) -> list:
    """(name, op it needs, function) of every case for `device`."""
    found = []
    for dtype in dtypes:
        tag = str(dtype).replace("torch.", "")
        for label, k, n, D in EXPANSION_CASES:
            found.append((f"expansion [{tag}] {label}: k={k} n={n} D={D}", "expansion",
                          lambda dt=dtype, k=k, n=n, D=D: expansion_case(device, dt, k, n, D)))
        for label, B, C, D, m, alpha, sg in PROXY_ANCHOR_CASES:
            found.append((f"proxy_anchor_fused [{tag}] {label}: B={B} C={C} D={D} m={m} alpha={alpha:g}",
                          "proxy_anchor_fused",
                          lambda dt=dtype, B=B, C=C, D=D, m=m, a=alpha, sg=sg:
                          proxy_anchor_case(device, dt, B, C, D, m, a, sg)))
        for label, B, C, D, m, shard in PROXY_ANCHOR_CHUNK_CASES:
            found.append((f"proxy_anchor_fused [{tag}] {label}: B={B} C={C} D={D} m={m} {shard}",
                          "proxy_anchor_fused",
                          lambda dt=dtype, B=B, C=C, D=D, m=m, sh=shard:
                          proxy_anchor_case(device, dt, B, C, D, m, ALPHA, True, **sh)))
        found.append((f"proxy_anchor_fused [{tag}] out-of-range labels: NaN (CUDA) or ValueError (CPU)",
                      "proxy_anchor_fused",
                      lambda dt=dtype: proxy_anchor_case(device, dt, 40, 13, 97, 64, ALPHA, True, bad_label=True)))
        for label, B, C, D, m, chunk, op in (("one chunk", 40, 13, 97, 64, None, "softmax_family_rows"),
                                             ("one class per chunk", 7, 60, 64, 20, 1, "softmax_family_grad")):
            found.append((f"softmax family [{tag}] ArcFace, {label}: B={B} C={C} D={D} m={m}", op,
                          lambda dt=dtype, B=B, C=C, D=D, m=m, c=chunk: softmax_family_case(device, dt, B, C, D, m, c)))
        found.append((f"softmax family [{tag}] out-of-range label: NaN", "softmax_family_rows",
                      lambda dt=dtype: softmax_family_case(device, dt, 40, 13, 97, 0, None, bad_label=True)))
        for R, D in ((37, 45), (9, 1000)):
            found.append((f"slerp [{tag}] antipodes, θ = 0 and θ → 0: R={R} D={D}", "slerp",
                          lambda dt=dtype, R=R, D=D: slerp_case(device, dt, R, D)))
        for count in (1001, 300_001):
            found.append((f"philox_normal_ [{tag}] {count} draws", "philox_normal_",
                          lambda dt=dtype, c=count: philox_case(device, dt, c)))
        for given_noise, selected in ((True, 16), (False, 16), (False, None), (False, 0)):
            how = "given noise" if given_noise else "Philox stream"
            chosen = "threshold 0" if selected is None else f"{selected} selected"
            found.append((f"see_loss_fused [{tag}] {how}, {chosen}", "see_loss_fused",
                          lambda dt=dtype, g=given_noise, s=selected: see_loss_fused_case(device, dt, g, s)))
        for products in ("tf32", "bf16"):
            found.append((f"see_loss_fused [{tag}] {products} products", "see_loss_fused",
                          lambda dt=dtype, pr=products: see_loss_fused_case(device, dt, False, 16, pr)))
        for detach in (True, False):
            for check in (True, False):
                found.append((f"fused_see_loss [{tag}] detach_synthetic={detach} check_values={check}",
                              "proxy_anchor_fused",
                              lambda dt=dtype, d=detach, c=check: public_loss_case(device, dt, d, c)))
    for num_centers, dim, radius in ((17, 20, 1.0), (300, 301, 2.0)):
        found.append((f"mmd_centers_ [float64] {num_centers} centers in {dim} dimensions", "mmd_centers_",
                      lambda c=num_centers, d=dim, r=radius: mmd_centers_case(device, torch.float64, c, d, r)))
    return found


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run(device: str, dtypes) -> int:
    failed = skipped = passed = 0
    for name, op, case in cases(device, dtypes):
        if not has_kernel(device, f"see_cuda::{op}"):
            print(f"skip  {'':>9}  {name}: no {op} kernel for {device} in this build", flush=True)
            skipped += 1
            continue
        start = time.perf_counter()
        try:
            case()
            synchronize(device)
            status = "ok"
            passed += 1
        except Exception as error:  # a smoke run reports every case, then fails
            status = "FAIL"
            failed += 1
            detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        ms = (time.perf_counter() - start) * 1e3
        print(f"{status:<5} {ms:>7.1f} ms  {name}", flush=True)
        if status == "FAIL":
            print(f"      {detail}", flush=True)
    print(f"{passed} ok, {failed} failed, {skipped} skipped (device {device})", flush=True)
    return 1 if failed or not passed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    parser.add_argument("--dtype", choices=tuple(DTYPES), action="append", help="default: float32 and float64")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")
    if not see_cuda.backends()[args.device]:
        parser.error(f"see_cuda was built without kernels for {args.device}: {see_cuda.backends()}")
    if args.device == "cuda":
        properties = torch.cuda.get_device_properties(0)
        optin = getattr(properties, "shared_memory_per_block_optin", None)
        print(f"{properties.name}: opt-in shared memory per block {optin} bytes", flush=True)
    torch.manual_seed(0)
    return run(args.device, [DTYPES[name] for name in args.dtype or DTYPES])


if __name__ == "__main__":
    sys.exit(main())
