"""Checks of user input, made once per call at the public API so that kernels can trust it.

Each check raises TypeError (wrong kind of thing) or ValueError (wrong value)
with the argument's name and what was expected. Checks of kinds, shapes,
dtypes and devices read no tensor data. The checks that must read values
(label range, finiteness, `check_values`) follow one policy:

- CPU tensors are always checked.
- The losses on CUDA tensors check on the device unless `check_values=False`
  (the one-call op's kernels flag bad values themselves; elsewhere a few
  reductions are queued), and nothing is read before the loss is queued: a
  failed check makes the loss NaN and its error is raised later, by the next
  call or wait_for_value_checks (deferred_checks.py says exactly when).
- The other functions check CUDA tensors unless `check_values=False`, by one
  reduction over all the arguments and one host synchronisation per call; only
  when that fails are the arguments checked one by one, to name the culprit.
- With `check_values=False` on CUDA nothing is read; the kernels stay
  memory-safe and an out-of-range label makes the loss NaN.
- The reference implementation always checks: it is the specification.
- Meta tensors hold no values: nothing is read, whatever the flags.
- Inside torch.compile the checks of CPU tensors are asserts in the graph
  (they raise RuntimeError with the same message when the graph runs); the
  read of CUDA values, a host synchronisation, is left out of the graph
  (a graph break; under fullgraph=True an error that names check_values=False).
"""
from __future__ import annotations

import torch

from . import _outside_graph, deferred_checks, transforms
from .constants import IMPLEMENTATIONS, INT64_MAX, NORM_EPS, PRODUCTS
from .selection import MODES

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
LOW_PRECISION = (torch.float16, torch.bfloat16)


# ---------------------------------------------------------------- scalars and options
def check_positive_int(value, name: str, minimum: int = 1, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")


def check_real(value, name: str, low: float | None = None, high: float | None = None, strict_low: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value <= low if strict_low else value < low):
        raise ValueError(f"{name} must be {'>' if strict_low else '>='} {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")


def check_bool(value, name: str) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


def check_implementation(implementation) -> None:
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")


def check_proxy_anchor_settings(alpha, margin) -> None:
    """Proxy-Anchor's α > 0 and δ (real numbers); α's bound per dtype is check_alpha_for_dtype."""
    check_real(alpha, "alpha", low=0.0, strict_low=True)
    check_real(margin, "margin")


def max_alpha(dtype: torch.dtype, margin: float) -> float:
    """The largest α for which the loss in `dtype` is finite (docs/method.md §1).

    Every logit α(s ± δ) (|s| <= 1) is at most A = α(1 + |δ|); each
    softplus(logsumexp) term is at most A + log(2N), and the loss, two means
    of such terms, at most 2(A + log 2N) < 4A for any batch whose log(2N)
    stays below A (else the loss is small anyway). A <= max/4 keeps every
    logit, term and the loss finite in `dtype`. Up to it the loss is the
    reference's value to within 2α(D + 4)u (u the unit roundoff of the
    kernels' dtype): a cosine errs by (D + 4)u, which α multiplies. The
    kernels take each column's exponents relative to its extreme stored
    cosine, so that exponent is exactly 0 for any α and no column's terms
    all vanish.
    """
    return torch.finfo(dtype).max / 4 / (1 + abs(margin))


def check_alpha_for_dtype(alpha: float, margin: float, dtype: torch.dtype) -> None:
    """α within max_alpha(dtype, margin) (alpha and margin already checked as reals)."""
    bound = max_alpha(dtype, margin)
    if alpha > bound:
        raise ValueError(
            f"alpha={alpha:g} is too large for a loss computed in {dtype} with margin={margin:g}: "
            f"need alpha <= {bound:.6g} (alpha·(1 + |margin|) <= max/4 of the dtype, so that every logit and the "
            "loss stay finite; see max_alpha)"
        )


def check_logit_map_for_dtype(logit_map, dtype: torch.dtype) -> None:
    """A softmax-family loss's logits |a·f(s) + b| within max/4 of `dtype`, so that the loss and its terms are finite.

    |f(s)| <= 1 + m (CosFace: |s - m|; ArcFace's continuation: |s| + m·sin m <= 1 + m).
    """
    bound = logit_map.scale * (1 + abs(logit_map.margin)) + abs(logit_map.bias)
    if not bound <= torch.finfo(dtype).max / 4:
        raise ValueError(f"the loss's scale {logit_map.scale:g} is too large for a loss computed in {dtype}: its "
                         f"logits reach {bound:.6g}, above max/4 of the dtype ({torch.finfo(dtype).max / 4:.6g})")


def check_products(products) -> None:
    """The float32 products a loss may use: "float32" (float32's accuracy), "tf32" or "bf16"."""
    if not isinstance(products, str):
        raise TypeError(f"products must be a str, 'float32', 'tf32' or 'bf16', got {type(products).__name__}")
    if products not in PRODUCTS:
        raise ValueError(f"products must be 'float32', 'tf32' or 'bf16', got {products!r}")


def check_chunk_bytes(chunk_bytes) -> None:
    """The memory budget of the fused loss's chunks of similarities: None (the default) or an int in
    [1, 2^63 - 1], what the op's int64 argument takes."""
    if chunk_bytes is not None:
        check_positive_int(chunk_bytes, "chunk_bytes", maximum=INT64_MAX)


def check_class_shard(num_local: int, class_offset, total_classes) -> None:
    """The local proxies (num_local of them) are the classes [class_offset, class_offset + num_local) of
    [0, total_classes): ints (not truncated floats), 0 <= class_offset <= total_classes - num_local."""
    check_positive_int(total_classes, "total_classes", minimum=0, maximum=INT64_MAX)
    check_positive_int(class_offset, "class_offset", minimum=0, maximum=INT64_MAX)
    if class_offset > total_classes - num_local:
        raise ValueError(f"class_offset must be <= total_classes - {num_local} = {total_classes - num_local} (the "
                         f"{num_local} proxies are the classes [class_offset, class_offset + {num_local}) of "
                         f"[0, total_classes)), got class_offset {class_offset} and total_classes {total_classes}")


def check_mode(mode) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def check_expansion_settings(expansion) -> None:
    """The fields of a SphericalExpansion (the dimension is checked per call: check_dim_for_expansion)."""
    check_positive_int(expansion.n_expansion, "n_expansion")
    check_real(expansion.lam, "lam", low=0.0)
    check_mode(expansion.mode)
    check_real(expansion.ratio, "ratio", low=0.0, high=1.0)
    check_real(expansion.threshold, "threshold")
    check_bool(expansion.detach_synthetic, "detach_synthetic")


def check_selection_args(scores, mode, ratio, threshold) -> None:
    if not isinstance(scores, torch.Tensor) or not scores.dtype.is_floating_point:
        raise TypeError(f"scores must be a floating-point torch.Tensor of shape (B,), got "
                        f"{scores.dtype if isinstance(scores, torch.Tensor) else type(scores).__name__}")
    if scores.dim() != 1:
        raise ValueError(f"scores must be 1-D with shape (B,), got shape {tuple(scores.shape)}")
    check_mode(mode)
    check_real(ratio, "ratio", low=0.0, high=1.0)
    check_real(threshold, "threshold")


def check_mode_for_device(mode: str, device: torch.device) -> None:
    """The threshold mode selects by values, which meta tensors do not hold: how many rows it expands is unknown."""
    if mode == "threshold" and device.type == "meta":
        raise ValueError("mode='threshold' expands as many rows as have a cosine above the threshold, which meta "
                         "tensors (shapes without values) cannot tell; use mode='fraction' or 'none' on meta tensors")


def check_schedule_epochs(epoch, num_epochs) -> None:
    check_real(epoch, "epoch", low=0.0)
    check_real(num_epochs, "num_epochs", low=0.0)


def check_dim_for_expansion(dim: int, n_expansion: int, name: str = "n_expansion", dim_name: str = "D") -> None:
    """The frame needs w, u and n-1 more orthonormal directions: D >= n + 1."""
    check_positive_int(n_expansion, name)
    if dim < n_expansion + 1:
        raise ValueError(
            f"{name}={n_expansion} needs an embedding dimension D >= {n_expansion + 1} (n + 1), got {dim_name} = {dim}"
        )


def check_mmd_centers_args(num_centers, dim, radius) -> None:
    check_positive_int(num_centers, "num_centers")
    check_positive_int(dim, "dim")
    check_real(radius, "radius", low=0.0)
    if dim < num_centers - 1:
        raise ValueError(f"dim must be >= num_centers - 1 = {num_centers - 1} for a regular simplex, got {dim}")


# ---------------------------------------------------------------- kinds, shapes, dtypes, devices
def check_float_matrix(t, name: str, shape_doc: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {shape_doc}, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be a floating-point tensor (float16, bfloat16, float32 or float64), got {t.dtype}"
        )
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D with shape {shape_doc}, got shape {tuple(t.shape)}")


def check_labels(labels, batch_size: int, name: str = "labels") -> None:
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B,), got {type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor (e.g. torch.int64), got {labels.dtype}")
    if labels.dim() != 1 or labels.shape[0] != batch_size:
        raise ValueError(f"{name} must have shape ({batch_size},) to match its rows, got {tuple(labels.shape)}")


def index_labels(labels: torch.Tensor) -> torch.Tensor:
    """Checked labels of any integer dtype as the int64 indices every implementation takes (converted once).

    Unsigned values beyond int64 wrap to negative numbers, which the range check then rejects.
    """
    return labels if labels.dtype == torch.int64 else labels.to(torch.int64)


def check_same_device(tensors: dict) -> None:
    devices = {name: t.device for name, t in tensors.items() if isinstance(t, torch.Tensor)}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{name} on {d}" for name, d in devices.items())
        raise ValueError(f"all tensors must be on one device, got {listing}")


def compute_dtype(embeddings: torch.Tensor, proxies: torch.Tensor, names=("embeddings", "proxies")) -> torch.dtype:
    """The dtype the loss is computed in; rejects pairs that are not a known pattern.

    Allowed: equal dtypes, or float16/bfloat16 embeddings with float32 proxies
    (mixed precision, where the proxies stay float32 parameters).
    """
    if embeddings.dtype == proxies.dtype:
        return embeddings.dtype
    if embeddings.dtype in LOW_PRECISION and proxies.dtype == torch.float32:
        return torch.float32
    first, second = names
    raise TypeError(
        f"{second} must have the dtype of {first} ({embeddings.dtype}), or float32 when {first} "
        f"are float16/bfloat16; got {second} of {proxies.dtype}"
    )


def check_noise_shape(noise, rows: int, n_expansion: int, dim: int, name: str = "noise") -> None:
    if noise is None:
        return
    expected = (rows, n_expansion - 1, dim)
    if not isinstance(noise, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {expected}, got {type(noise).__name__}")
    if not noise.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got {noise.dtype}")
    if tuple(noise.shape) != expected:
        raise ValueError(f"{name} must have shape {expected} (rows, n_expansion - 1, D), got {tuple(noise.shape)}")


def check_generator(generator, device: torch.device | None = None) -> None:
    """None or a torch.Generator, on the device type of the tensors (when `device` is known)."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if device is not None and generator.device.type != device.type:
        raise ValueError(f"generator is on {generator.device} but the embeddings are on {device}")


def check_see_call(embeddings, labels, proxies, expansion, settings, noise=None, generator=None, chunk_bytes=None,
                   world_size: int = 1, products: str = "float32") -> torch.dtype:
    """The checks of a SEE loss call that read no values, in one sequence; returns the compute dtype.

    expansion: a SphericalExpansion; settings: the base loss's settings (their
    own bound per dtype: settings.check_dtype). world_size: how many processes'
    B rows the given noise holds draws for (the sharded loss: all of them).
    """
    dtype = check_loss_inputs(embeddings, labels, proxies)
    settings.check_dtype(dtype)
    check_chunk_bytes(chunk_bytes)
    check_products(products)
    B, D = embeddings.shape
    if expansion.expands:
        check_dim_for_expansion(D, expansion.n_expansion)
    check_mode_for_device(expansion.mode, embeddings.device)
    check_noise_shape(noise, world_size * B, expansion.n_expansion, D)
    check_same_device({"embeddings": embeddings, "noise": noise})
    check_generator(generator, embeddings.device)
    return dtype


def check_loss_inputs(embeddings, labels, proxies) -> torch.dtype:
    """Kinds, shapes, dtypes and devices of a loss call; returns the compute dtype."""
    check_float_matrix(embeddings, "embeddings", "(B, D)")
    check_float_matrix(proxies, "proxies", "(C, D)")
    B, D = embeddings.shape
    C, D_p = proxies.shape
    if B == 0:
        raise ValueError("embeddings must hold at least one row, got shape (0, D)")
    if C == 0:
        raise ValueError("proxies must hold at least one class, got shape (0, D)")
    if D_p != D:
        raise ValueError(f"proxies must have shape (C, {D}) to match embeddings' D = {D}, got {tuple(proxies.shape)}")
    check_labels(labels, B)
    check_same_device({"embeddings": embeddings, "labels": labels, "proxies": proxies})
    return compute_dtype(embeddings, proxies)


def check_synthetic_inputs(embeddings, synthetic, synthetic_labels, lam) -> None:
    check_real(lam, "lam", low=0.0)
    D = embeddings.shape[1]
    check_float_matrix(synthetic, "synthetic", f"(M, {D})")
    if synthetic.shape[1] != D:
        raise ValueError(f"synthetic must have shape (M, {D}), got {tuple(synthetic.shape)}")
    if synthetic.dtype != embeddings.dtype:
        raise TypeError(f"synthetic must have the dtype of embeddings ({embeddings.dtype}), got {synthetic.dtype}")
    check_labels(synthetic_labels, synthetic.shape[0], name="synthetic_labels")
    check_same_device({"embeddings": embeddings, "synthetic": synthetic, "synthetic_labels": synthetic_labels})


def check_expansion_inputs(z, w, n_expansion, noise, generator) -> torch.dtype:
    """Kinds, shapes and devices of spherical_expansion's arguments; returns the compute dtype."""
    check_float_matrix(z, "z", "(k, D)")
    check_float_matrix(w, "w", "(k, D)")
    if w.shape != z.shape:
        raise ValueError(f"w must have the shape of z {tuple(z.shape)}, got {tuple(w.shape)}")
    k, D = z.shape
    check_dim_for_expansion(D, n_expansion)
    check_noise_shape(noise, k, n_expansion, D)
    check_same_device({"z": z, "w": w, "noise": noise})
    check_generator(generator, z.device)
    return compute_dtype(z, w, names=("z", "w"))


def check_slerp_inputs(a, b, t):
    """Kinds, shapes and devices of slerp's arguments; returns (dtype, t broadcast to a.shape[:-1])."""
    for name, v in (("a", a), ("b", b)):
        if not isinstance(v, torch.Tensor) or not v.dtype.is_floating_point:
            raise TypeError(f"{name} must be a floating-point torch.Tensor")
        if v.dim() < 1 or v.shape[-1] < 2:
            raise ValueError(f"{name} must have shape (..., D) with D >= 2, got {tuple(v.shape)}")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    check_same_device({"a": a, "b": b, "t": t})
    dtype = torch.promote_types(a.dtype, b.dtype)
    t = torch.as_tensor(t, dtype=dtype, device=a.device)
    try:
        t_rows = torch.broadcast_to(t, a.shape[:-1])
    except RuntimeError:
        raise ValueError(f"t must broadcast to {tuple(a.shape[:-1])}, got shape {tuple(t.shape)}") from None
    return dtype, t_rows


# ---------------------------------------------------------------- values
def values_are_read(device: torch.device, check_values: bool) -> bool:
    """Whether a call on `device` reads its arguments' values: always on the CPU, on CUDA unless
    told not to, never on meta tensors (they hold none)."""
    if device.type == "meta":
        return False
    return device.type == "cpu" or check_values


def values_are_deferred(device: torch.device, check_values: bool) -> bool:
    """Whether a loss call's checks are queued on the device and read later (deferred_checks): on CUDA
    when asked for, outside torch.compile (which reads them as before)."""
    return device.type == "cuda" and check_values and not torch.compiler.is_compiling()


def check_call_values(device: torch.device, flag, read_always: bool = False, dtype=None, deferrable: bool = False,
                      **groups) -> deferred_checks.PendingCheck | None:
    """check_values as a call's `check_values=flag` asks (a bool): the values are read where
    values_are_read says, or always with read_always (the reference); groups: those of check_values.

    Earlier calls' deferred checks that have arrived raise first. deferrable (a loss call): where
    values_are_deferred says, the checks are queued instead, and the PendingCheck returned, for
    deferred_checks.checked to apply to the loss."""
    transforms.refuse_vmap()
    check_bool(flag, "check_values")
    if flag and device.type == "cuda" and not read_always and torch.cuda.is_current_stream_capturing():
        # A captured check would be queued once and never read on the graph's replays.
        raise ValueError("check_values=True cannot be captured in a CUDA graph (its checks would run on every "
                         "replay and be read on none): pass check_values=False inside the capture")
    if not torch.compiler.is_compiling():  # a compiled graph holds no pending checks of its own
        deferred_checks.raise_arrived()
    if not any(groups.values()):
        return None
    if deferrable and not read_always and values_are_deferred(device, flag):
        return queue_value_checks(dtype=dtype, **groups)
    if values_are_read(device, flag or read_always):
        check_values(dtype=dtype, **groups)
    return None


def queue_value_checks(finite: dict | None = None, labels: dict | None = None, noise: dict | None = None,
                       rows: dict | None = None, dtype: torch.dtype | None = None) -> deferred_checks.PendingCheck:
    """check_values' checks as flags on the device, nothing read: each exact (no conservative flag,
    since a failed flag makes the loss NaN), with its message, in the order check_values reports them."""
    finite, labels, noise, rows = finite or {}, labels or {}, noise or {}, rows or {}
    flags, messages, ranges = [], [], []

    def add(flag: torch.Tensor, message) -> None:
        flags.append(flag)
        messages.append(message)

    for name, t in list(finite.items()) + list(rows.items()) + list(noise.items()):
        if t.numel():
            add(torch.isfinite(t).all(), lambda _, name=name: _nonfinite_message(name))
    for name, (t, num_classes) in labels.items():
        if t.numel():
            lo_hi = torch.stack(torch.aminmax(t))
            index = len(ranges)
            ranges.append(lo_hi)
            add((lo_hi[0] >= 0) & (lo_hi[1] < num_classes),
                lambda r, name=name, n=num_classes, i=index: _labels_message(name, n, int(r[i, 0]), int(r[i, 1])))
    for name, t in rows.items():
        if t.numel():
            add(_rows_are_normalisable(t, dtype).all(),
                lambda _, name=name, d=dtype or t.dtype: _rows_message(name, d))
    for name, t in noise.items():
        if t.numel():
            add(_draws_are_normalisable(t, dtype).all(),
                lambda _, name=name, d=dtype or t.dtype: _noise_message(name, d))
    device = next(iter(list(finite.values()) + list(rows.values()) + list(noise.values())
                       + [t for t, _ in labels.values()])).device
    stacked = torch.stack(flags) if flags else torch.ones(1, dtype=torch.bool, device=device)

    def failure(host_flags, host_ranges=None):
        for flag, message in zip(host_flags.tolist(), messages):
            if not flag:
                return message(host_ranges)
        return None

    values = (stacked, torch.stack(ranges)) if ranges else (stacked,)
    return deferred_checks.PendingCheck(values, failure, passed=stacked.all())


# The one-call op's value flags (csrc/cuda/see_loss_launch.h): the bit of each argument it checks.
KERNEL_FLAG_BITS = {"labels": 1, "embeddings": 2, "proxies": 4}


def flagged_values_check(value_flags: torch.Tensor, rows: dict, labels: dict,
                         dtype: torch.dtype | None = None) -> deferred_checks.PendingCheck:
    """The deferred check of a call whose kernels flagged its values (value_flags: 0-d int64 on the
    device, bits KERNEL_FLAG_BITS; rows and labels: check_values' groups of those arguments).

    Nothing is added to the call. On a failure the arguments are checked again, for check_values'
    own message, where none of them has changed in place since the call (autograd's version
    counter); otherwise the message names the flagged argument without the values' range.
    """
    rows = {name: t.detach() for name, t in rows.items()}  # the version counter is shared, the graph is not kept
    labels = {name: (t.detach(), num_classes) for name, (t, num_classes) in labels.items()}
    tensors = list(rows.values()) + [t for t, _ in labels.values()]
    versions = [t._version for t in tensors]

    def failure(host_flags):
        bits = int(host_flags)
        if bits == 0:
            return None
        if [t._version for t in tensors] == versions:
            try:
                check_values(rows=rows, labels=labels, dtype=dtype)
            except ValueError as error:
                return str(error)
        changed = " (changed in place since the call, so its values are not shown)"
        for name, (_, num_classes) in labels.items():
            if bits & KERNEL_FLAG_BITS[name]:
                return _labels_range(name, num_classes) + changed
        for name in rows:
            if bits & KERNEL_FLAG_BITS[name]:
                return f"{_nonfinite_message(name)} or a row whose squared norm overflows{changed}"
        return f"the kernels flagged the call's values (flags {bits})"

    return deferred_checks.PendingCheck((value_flags,), failure)


def check_values(finite: dict | None = None, labels: dict | None = None, noise: dict | None = None,
                 rows: dict | None = None, dtype: torch.dtype | None = None) -> None:
    """Finiteness, label range and rows that can be normalised, with one host synchronisation when all is well.

    finite: name -> tensor that must hold finite values; labels: name ->
    (labels, number of classes); rows: name -> tensor whose rows (last axis)
    are normalised as x / sqrt(|x|² + ε) in `dtype`: finite, and |x|² must not
    overflow there (x/|x| would be 0); noise: name -> given draws, normalised
    in `dtype` as x / |x|: finite, and each draw's squared norm a normal number,
    neither 0 (an all-zero draw spans nothing) nor an under- or overflow
    (docs/method.md §3.2). dtype: the dtype of the computation (default: each
    tensor's own).
    """
    finite, labels, noise, rows = finite or {}, labels or {}, noise or {}, rows or {}
    if torch.compiler.is_compiling():
        tensors = list(finite.values()) + list(noise.values()) + list(rows.values()) + [t for t, _ in labels.values()]
        if all(t.device.type == "cpu" for t in tensors):
            return _assert_values_in_graph(finite, labels, noise, rows, dtype)
        return _outside_graph.read_values(finite, labels, noise, rows, dtype)
    return _read_values(finite, labels, noise, rows, dtype)


def _draws_are_normalisable(t: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """Per draw (last axis), whether its squared norm in `dtype` is a normal number: x/|x| is then defined."""
    t = t.to(dtype or t.dtype)
    squared = (t * t).sum(-1)
    info = torch.finfo(t.dtype)
    return (squared >= info.tiny) & (squared <= info.max)


# The ε of the normalisation x / sqrt(|x|² + ε) is 0 in float16, whose smallest number is 6e-8,
# so that there a row of squared norm below that divides 0 by 0.
_EPS_VANISHES = {dtype: float(torch.tensor(NORM_EPS, dtype=dtype)) == 0 for dtype in FLOAT_DTYPES}


def _rows_are_normalisable(t: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """Per row (last axis), whether |x|² + ε in `dtype`, as the normalisation computes it, is finite and not 0."""
    t = t.to(dtype or t.dtype)
    squared = (t * t).sum(-1) + NORM_EPS
    return torch.isfinite(squared) & (squared > 0)


def _rows_flag(t: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """Every entry at most sqrt(max / 2D) in magnitude (NaN fails), so that no row's squared norm can
    overflow: one pass, no temporary. Where ε is 0 in the dtype (float16) the rows' norms are taken
    too. Failing it is not yet an error: the rows are then checked one by one."""
    dtype = dtype or t.dtype
    lo, hi = (v.double() for v in torch.aminmax(t))  # the limit would round to inf in a narrower dtype
    limit = (torch.finfo(dtype).max / (2 * max(t.shape[-1], 1))) ** 0.5
    flag = (lo >= -limit) & (hi <= limit)
    if _EPS_VANISHES[dtype]:
        flag = flag & _rows_are_normalisable(t, dtype).all()
    return flag


def _nonfinite_message(name: str) -> str:
    return f"{name} contains NaN or infinite values"


def _labels_range(name: str, num_classes: int) -> str:
    return f"{name} must lie in [0, {num_classes}) (the number of proxies)"


def _labels_message(name: str, num_classes: int, lo: int, hi: int) -> str:
    return f"{_labels_range(name, num_classes)}, got values in [{lo}, {hi}]"


def _noise_message(name: str, dtype: torch.dtype) -> str:
    return (f"{name} has a draw that cannot be normalised in {dtype}: its squared norm is 0 or under- or "
            "overflows (an all-zero row, or a scale far from 1). Each row of D numbers is used by its direction "
            "only: rescale the draws")


def _rows_message(name: str, dtype: torch.dtype) -> str:
    return (f"{name} has a row whose squared norm overflows in {dtype} (a norm above "
            f"{torch.finfo(dtype).max ** 0.5:.3g}), or, where the normalisation's ε of 1e-12 is 0 "
            f"(float16), underflows: it cannot be normalised; rescale it")


def _read_values(finite: dict, labels: dict, noise: dict, rows: dict, dtype) -> None:
    flags = []
    for t in list(finite.values()) + list(noise.values()):
        if t.numel():
            flags.append(torch.isfinite(t.sum(dtype=_accumulation_dtype(t))))
    for t in rows.values():
        if t.numel():
            flags.append(_rows_flag(t, dtype))
    for t, num_classes in labels.values():
        if t.numel():
            lo, hi = torch.aminmax(t)
            flags.append((lo >= 0) & (hi < num_classes))
    for t in noise.values():
        if t.numel():
            flags.append(_draws_are_normalisable(t, dtype).all())
    if not flags or bool(torch.stack(flags).all()):
        return
    # Something failed (or a flag was conservative): find it, one argument at a time.
    for name, t in list(finite.items()) + list(rows.items()) + list(noise.items()):
        if t.numel() and not bool(torch.isfinite(t).all()):
            raise ValueError(_nonfinite_message(name))
    for name, (t, num_classes) in labels.items():
        if t.numel():
            lo, hi = (int(v) for v in torch.aminmax(t))
            if lo < 0 or hi >= num_classes:
                raise ValueError(_labels_message(name, num_classes, lo, hi))
    for name, t in rows.items():
        if t.numel() and not bool(_rows_are_normalisable(t, dtype).all()):
            raise ValueError(_rows_message(name, dtype or t.dtype))
    for name, t in noise.items():
        if t.numel() and not bool(_draws_are_normalisable(t, dtype).all()):
            raise ValueError(_noise_message(name, dtype or t.dtype))


_outside_graph.register(
    "read_values", _read_values,
    reason="see_cuda reads the values of CUDA tensors (label range, finiteness) with one host synchronisation; "
           "under torch.compile(fullgraph=True) pass check_values=False",
)


def _assert_values_in_graph(finite: dict, labels: dict, noise: dict, rows: dict, dtype) -> None:
    """The checks of _read_values as asserts that torch.compile keeps in the graph (CPU tensors)."""
    for name, t in list(finite.items()) + list(rows.items()) + list(noise.items()):
        torch._assert_async(torch.isfinite(t).all(), _nonfinite_message(name))
    for name, (t, num_classes) in labels.items():
        torch._assert_async(((t >= 0) & (t < num_classes)).all(),
                            f"{name} must lie in [0, {num_classes}) (the number of proxies)")
    for name, t in rows.items():
        torch._assert_async(_rows_are_normalisable(t, dtype).all(), _rows_message(name, dtype or t.dtype))
    for name, t in noise.items():
        torch._assert_async(_draws_are_normalisable(t, dtype).all(), _noise_message(name, dtype or t.dtype))


def _accumulation_dtype(t: torch.Tensor) -> torch.dtype:
    """Half-precision sums accumulate in float32, so that a sum of finite values rarely overflows."""
    return torch.float32 if t.dtype in LOW_PRECISION else t.dtype
