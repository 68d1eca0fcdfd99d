"""The loss as an nn.Module that owns the proxies, called like pytorch-metric-learning's losses."""
from __future__ import annotations

import torch
from torch import nn

from . import validation
from .functional import see_loss_with_options
from .modules.base import refuse_forward_extras, refuse_pml_arguments
from .modules.schedule_warnings import ScheduleWarnings
from .options import DEFAULTS, SEEOptions
from .selection import fraction_schedule, threshold_schedule


class SEEProxyAnchorLoss(nn.Module):
    """Proxy-Anchor loss with Spherical Embedding Expansion.

    `loss_fn = SEEProxyAnchorLoss(num_classes, embedding_size)`, then
    `loss = loss_fn(embeddings, labels)` with embeddings B x D and labels B in
    [0, num_classes). The C x D proxies are a parameter of the module
    (`loss_fn.proxies`, kaiming-normal with fan_out as in Proxy-Anchor); give them
    their own learning rate in the optimizer. Call `step_epoch(epoch)` at the start
    of each epoch to advance the expansion schedule (docs/method.md §2).
    `mode="none"` makes it plain Proxy-Anchor on the same proxies.

    Args:
        num_classes, embedding_size: C and D.
        n_expansion: synthetic points per expanded sample (16); D >= n + 1.
        lam: weight of the synthetic term (0.2, the original training script's).
        mode: "fraction" (default), "threshold" or "none" (no expansion).
        num_epochs: length of training E, for the schedules (default 40).
        rho_min, rho_max: fraction schedule bounds (0.04 → 0.4).
        tau_min, tau_max, tau_lower_bound: threshold schedule (0.5 → 0.9, floor 0).
        alpha, margin: Proxy-Anchor's α (32) and δ (0.1).
        detach_synthetic: the synthetic term trains only the proxies (True).
        generator: a torch.Generator for the random frames (optional; without
            one, torch's default generator of the device is drawn from).
        implementation: "auto", "fused" or "reference".
        check_values: on CUDA, whether label range and finiteness are checked,
            on the device without waiting (as fused_see_loss: a failed check's
            loss is NaN, its error raised by a later call);
            False makes an out-of-range label give a NaN loss instead. CPU
            tensors are always checked at once.
        chunk_bytes: the memory budget of the fused loss's chunks of classes
            (None: the default, 256 MiB): how it computes, not what, so it is
            not part of `options` (see_cuda.proxy_anchor_loss).
        products: the float32 products the one-call CUDA op may use,
            "float32" (default), "tf32" or "bf16" (as fused_see_loss; not part of
            `options` either).

    The settings after (num_classes, embedding_size) are keyword-only (PML's
    positional (margin, alpha) is refused, never misread), PML's keywords are
    refused by name, and forward takes PML's (embeddings, labels,
    indices_tuple=None, ref_emb=None, ref_labels=None). This is
    see_cuda.ProxyAnchorLoss(expansion=SphericalExpansion(...), num_epochs=...)
    spelled with flat settings, and with the schedule in the state dict.

    `options` holds the settings of the current epoch as a SEEOptions. The
    state dict carries the epoch and the generator's state (extra state), so
    that a loaded module continues the same schedule and random frames.
    """

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        *positional,
        n_expansion: int = DEFAULTS.n_expansion,
        lam: float = DEFAULTS.lam,
        mode: str = DEFAULTS.mode,
        num_epochs: int = 40,
        rho_min: float = 0.04,
        rho_max: float = 0.4,
        tau_min: float = 0.5,
        tau_max: float = 0.9,
        tau_lower_bound: float = 0.0,
        alpha: float = DEFAULTS.alpha,
        margin: float = DEFAULTS.margin,
        detach_synthetic: bool = DEFAULTS.detach_synthetic,
        generator: torch.Generator | None = None,
        implementation: str = "auto",
        check_values: bool = True,
        chunk_bytes: int | None = None,
        products: str = "float32",
        **pml_keywords,
    ):
        super().__init__()
        refuse_pml_arguments(type(self).__name__, positional, pml_keywords)
        validation.check_positive_int(num_classes, "num_classes")
        validation.check_positive_int(embedding_size, "embedding_size")
        validation.check_positive_int(num_epochs, "num_epochs")
        validation.check_real(rho_min, "rho_min", low=0.0, high=1.0)
        validation.check_real(rho_max, "rho_max", low=0.0, high=1.0)
        validation.check_real(tau_max, "tau_max")
        validation.check_real(tau_min, "tau_min")
        validation.check_real(tau_lower_bound, "tau_lower_bound")
        validation.check_implementation(implementation)
        validation.check_bool(check_values, "check_values")
        validation.check_chunk_bytes(chunk_bytes)
        validation.check_products(products)
        validation.check_generator(generator)
        self.num_classes, self.embedding_size = num_classes, embedding_size
        self.num_epochs = num_epochs
        self.rho_min, self.rho_max = rho_min, rho_max
        self.tau_min, self.tau_max, self.tau_lower_bound = tau_min, tau_max, tau_lower_bound
        self.generator = generator
        self.implementation, self.check_values, self.chunk_bytes = implementation, check_values, chunk_bytes
        self.products = products
        self.epoch = 0
        self.schedule_warnings = ScheduleWarnings(type(self).__name__, num_classes)
        self.options = SEEOptions(n_expansion=n_expansion, lam=lam, mode=mode, ratio=self.ratio,
                                  threshold=self.threshold, alpha=alpha, margin=margin,
                                  detach_synthetic=detach_synthetic)
        if self.options.expands:
            validation.check_dim_for_expansion(embedding_size, n_expansion)
        self.proxies = nn.Parameter(self.initial_proxies())
        self.last_stats = None

    def initial_proxies(self) -> torch.Tensor:
        """The proxies before training: C x D, kaiming-normal with fan_out = C, as in Proxy-Anchor."""
        proxies = torch.empty(self.num_classes, self.embedding_size)
        return nn.init.kaiming_normal_(proxies, mode="fan_out")

    def step_epoch(self, epoch: int | None = None) -> None:
        """Set the schedule to `epoch` (or advance it by one)."""
        if epoch is not None:
            validation.check_schedule_epochs(epoch, self.num_epochs)
        self.epoch = self.epoch + 1 if epoch is None else epoch
        if self.options.expands:  # the schedule's traps: warned once each
            self.schedule_warnings.set_epoch(self.epoch, self.num_epochs)
        self.options = self.options.replace(ratio=self.ratio, threshold=self.threshold)

    @property
    def ratio(self) -> float:
        """The fraction of the batch expanded at the current epoch (fraction mode)."""
        return fraction_schedule(self.epoch, self.num_epochs, self.rho_min, self.rho_max)

    @property
    def threshold(self) -> float:
        """The cosine a sample needs to be expanded at the current epoch (threshold mode)."""
        return threshold_schedule(self.epoch, self.num_epochs, self.tau_min, self.tau_max, self.tau_lower_bound)

    n_expansion = property(lambda self: self.options.n_expansion)
    lam = property(lambda self: self.options.lam)
    mode = property(lambda self: self.options.mode)
    alpha = property(lambda self: self.options.alpha)
    margin = property(lambda self: self.options.margin)
    detach_synthetic = property(lambda self: self.options.detach_synthetic)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple=None, ref_emb=None,
                ref_labels=None) -> torch.Tensor:
        refuse_forward_extras(indices_tuple, ref_emb, ref_labels)
        loss, self.last_stats = see_loss_with_options(
            embeddings, labels, self.proxies, self.options, self.generator, None, self.implementation,
            self.check_values, self.chunk_bytes, self.products,
        )
        if self.training and self.options.expands:
            self.schedule_warnings.training_step(embeddings.shape[0], self.options.ratio)
        return loss

    def get_extra_state(self) -> torch.Tensor:
        """The epoch (float64) followed by the generator's state, as one uint8 tensor.

        One tensor rather than a dict, so that state dicts compare entry by entry with torch.equal.
        """
        epoch = torch.tensor([float(self.epoch)], dtype=torch.float64).view(torch.uint8)
        state = self.generator.get_state() if self.generator is not None else torch.empty(0, dtype=torch.uint8)
        return torch.cat([epoch, state.cpu()])

    def set_extra_state(self, state: torch.Tensor) -> None:
        state = state.cpu()
        epoch = float(state[:8].clone().view(torch.float64))
        self.step_epoch(int(epoch) if epoch.is_integer() else epoch)
        if state.numel() > 8:
            if self.generator is None:
                raise ValueError("the state holds a generator's state but this module has no generator")
            self.generator.set_state(state[8:].clone())

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # The schedule's state is optional: a state dict of PML's ProxyAnchorLoss (proxies alone) loads strictly.
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if prefix + "_extra_state" in missing_keys:
            missing_keys.remove(prefix + "_extra_state")

    def extra_repr(self) -> str:
        o = self.options
        return (
            f"num_classes={self.num_classes}, embedding_size={self.embedding_size}, n_expansion={o.n_expansion}, "
            f"lam={o.lam}, mode={o.mode!r}, alpha={o.alpha}, margin={o.margin}"
        )
