"""The implementations the benchmark times: a loss function each, plus the matmul floor."""
from __future__ import annotations

import functools

import torch

import see_cuda
from see_cuda import composition, fused, reference
from see_cuda.share import chunk_budget, classes_per_chunk

from oracles.original_see import original_see_loss
from problems import Batch, Shape
from published_see import published_see_loss

FLOOR = "matmul floor"
ALL = ("fused", "reference", "original", "published", "pml", FLOOR)
# The original training script's loss settings.
LAM, ALPHA, MARGIN = 0.2, 32.0, 0.1
# Every SEE implementation draws its noise from a generator seeded with this, so
# that all of them build the same synthetic points and their losses can be compared.
NOISE_SEED = 1234
# The reference and the original draw with the compiled stream where there is one:
# the PyTorch statement of the stream (see_cuda.noise) is ~20x slower than
# torch.randn, a cost of the specification, not of the method being timed.
TIMED_REFERENCE = reference.PRIMITIVES._replace(draws=fused.draws)


def fused_available(device: str) -> bool:
    backends = see_cuda.backends()
    return backends[device] and (device == "cpu" or backends["cuda_device"])


@functools.lru_cache(maxsize=None)
def pml_available() -> bool:
    try:  # importing, not just finding it: an install that cannot be imported counts as missing
        import pytorch_metric_learning.losses  # noqa: F401
    except ImportError:
        return False
    return True


def left_out(device: str) -> dict:
    """name -> why, for the implementations this machine cannot run."""
    reasons = {}
    if not fused_available(device):
        reasons["fused"] = f"no kernels for {device} in this build (or no GPU)"
    if not pml_available():
        reasons["pml"] = "pytorch-metric-learning cannot be imported here"
    return reasons


def fused_see_loss_function(shape: Shape, batch: Batch, device: str, chunk_bytes=None):
    """f() returning the fused SEE loss of `batch`, its classes in chunks of at most chunk_bytes of cosines."""
    options = dict(n_expansion=shape.n_expansion, lam=LAM, ratio=shape.ratio, alpha=ALPHA, margin=MARGIN)
    return lambda: see_cuda.fused_see_loss(
        batch.embeddings, batch.labels, batch.proxies, implementation="fused",
        generator=torch.Generator(device=device).manual_seed(NOISE_SEED), chunk_bytes=chunk_bytes, **options
    )


def see_loss_functions(shape: Shape, batch: Batch, device: str, chunk_bytes=None) -> dict:
    """name -> f() returning the 0-d loss of `batch`, with its graph; SEE ones and pml (when installed).

    Where the classes are too many for an N x C matrix (shape.many_classes), the fused loss alone.
    """
    x, y, proxies = batch.embeddings, batch.labels, batch.proxies
    options = dict(n_expansion=shape.n_expansion, lam=LAM, ratio=shape.ratio, alpha=ALPHA, margin=MARGIN)

    def noise_source():
        return torch.Generator(device=device).manual_seed(NOISE_SEED)

    functions = {}
    if fused_available(device):
        functions["fused"] = fused_see_loss_function(shape, batch, device, chunk_bytes)
    if shape.many_classes:
        return functions
    see_options = see_cuda.SEEOptions(**options)
    functions["reference"] = lambda: composition.see_loss(x, y, proxies, see_options.expansion, see_options.loss,
                                                          TIMED_REFERENCE, generator=noise_source())[0]
    functions["original"] = lambda: original_see_loss(x, y, proxies, generator=noise_source(),
                                                      draw_noise=fused.kernel_noise, **options)
    functions["published"] = lambda: published_see_loss(x, y, proxies, generator=noise_source(),
                                                        draw_noise=fused.kernel_noise, **options)
    if pml_available():
        functions["pml"] = pml_loss_function(shape, batch)
    return functions


def pml_loss_function(shape: Shape, batch: Batch):
    """pytorch-metric-learning's Proxy-Anchor (no expansion) holding the batch's proxies."""
    from pytorch_metric_learning.losses import ProxyAnchorLoss  # slow import, only when used and present

    loss_fn = ProxyAnchorLoss(shape.classes, shape.dim, margin=MARGIN, alpha=ALPHA)
    loss_fn.proxies = batch.proxies
    return lambda: loss_fn(batch.embeddings, batch.labels)


def chunk_classes(shape: Shape, dtype: torch.dtype, chunk_bytes=None) -> int:
    """Classes per chunk of the fused loss (the same rule as classes_per_chunk in csrc/proxy_anchor.h)."""
    per_chunk = classes_per_chunk(shape.num_rows, fused.kernel_dtype(dtype), chunk_budget(chunk_bytes))
    return min(shape.classes, per_chunk)


def fused_loss_products(X, P, B, width):
    """The matrix products the fused SEE loss does, alone; update them if the kernel changes.

    X is N x D (the B real rows, then the m synthetic ones), P is C x D, taken in
    chunks of `width` classes as the kernel takes them. Per chunk P_c, forward
    S_c^T = P_c @ X^T (the CPU kernel keeps S^T; the CUDA kernel the same products
    transposed); backward, with S_c^T standing in for G_c (same shape),
    dL/dP_c = G_c @ X over all N rows and dL/dX_real += G_c[:, :B]^T @ P_c.
    """
    N, D = X.shape
    grad_P = P.new_empty(P.shape)
    grad_X = X.new_zeros(B, D)
    G = X.new_empty(min(width, P.shape[0]), N)
    for first in range(0, P.shape[0], width):
        P_c = P[first:first + width]
        G_c = G[:P_c.shape[0]]
        torch.mm(P_c, X.t(), out=G_c)
        torch.mm(G_c, X, out=grad_P[first:first + width])
        grad_X.addmm_(G_c[:, :B].t(), P_c)
    return grad_P, grad_X


def floor_step(shape: Shape, dtype: torch.dtype, device: str, chunk_bytes=None):
    """f() running the fused loss's products on random tensors of its shapes."""
    B, D, C, m = shape.batch, shape.dim, shape.classes, shape.num_synthetic
    generator = torch.Generator(device=device).manual_seed(0)

    def operand(rows, cols):
        return torch.randn(rows, cols, generator=generator, dtype=dtype, device=device)

    X, P = operand(B + m, D), operand(C, D)
    width = chunk_classes(shape, dtype, chunk_bytes)
    return lambda: fused_loss_products(X, P, B, width)


def timed_steps(shape: Shape, batch: Batch, dtype: torch.dtype, device: str, names, chunk_bytes=None) -> dict:
    """name -> f() doing one forward+backward (for the floor: its products), for `names`."""
    losses = see_loss_functions(shape, batch, device, chunk_bytes)

    def forward_backward(loss_function):
        def step():
            loss_function().backward()

        return step

    steps = {name: forward_backward(f) for name, f in losses.items() if name in names}
    if FLOOR in names:
        steps[FLOOR] = floor_step(shape, dtype, device, chunk_bytes)
    return steps
