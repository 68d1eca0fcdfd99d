"""BatchNorm whose training statistics are those of the whole batch, gathered over the processes.

torch.nn.SyncBatchNorm does this only on GPUs; this one works on any device and backend
(gloo included), through the differentiable all-reduce of torch.distributed.nn. In training
mode with several processes, the mean and then the centred sum of squares (two passes, as
one process computes them) are summed over the processes, so every process normalises by
the statistics of the concatenated batch and the running statistics are the same
everywhere; the backward sums the statistics' gradients over the processes. In evaluation
mode, or on one process, it is torch.nn.BatchNorm's forward.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch import nn


class GatheredBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over every process's rows; same parameters and buffers as the BatchNorm it replaces."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected an input with at least 2 dimensions (N, C, ...), got {input.dim()}")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        self._check_input_dim(input)
        dims = [0] + list(range(2, input.dim()))
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = torch.tensor(float(input.numel() // input.shape[1]), dtype=input.dtype, device=input.device)
        dist.all_reduce(count)
        mean = dist_nn.all_reduce(input.sum(dims)) / count
        centred = input - mean.view(shape)
        var = dist_nn.all_reduce(centred.square().sum(dims)) / count
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), count)
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor) -> None:
        # As nn.BatchNorm: the unbiased variance, and a cumulative average when momentum is None.
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        unbiased = var * count / (count - 1) if float(count) > 1 else var
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)


def gather_batch_norm(module: nn.Module) -> nn.Module:
    """`module` with every BatchNorm layer (1d, 2d, 3d, SyncBatchNorm) replaced in place by a
    GatheredBatchNorm holding the same parameters and buffers; returns `module` (or the
    replacement, when `module` is itself a BatchNorm)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GatheredBatchNorm):
        replacement = GatheredBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                        module.track_running_stats)
        # The same Parameter and buffer objects (dtype and device included): an optimizer built before steps them.
        for name, tensor in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
            setattr(replacement, name, tensor)
        replacement.train(module.training)
        return replacement
    for name, child in module.named_children():
        setattr(module, name, gather_batch_norm(child))
    return module
