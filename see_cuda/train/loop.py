"""One training epoch: embed the local batch, gather, loss, backward, reduce, step.

The network is in DistributedDataParallel on several processes (see_cuda.train.distributed),
which reduces its gradients during the backward. With the proxies sharded (see_cuda.sharded)
the loss module gathers the rows itself and each process's proxies get their complete
gradient where they are; replicated proxies' gradients are averaged after the backward."""
from __future__ import annotations

import contextlib

import torch
from tqdm import tqdm

from ..sharded import ShardedSEEProxyAnchorLoss, ShardedSoftmaxFamilyLoss
from .distributed import average_gradients, gather, gather_with_grad

AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
# The loss modules that gather the rows themselves, each process holding its classes.
SHARDED_LOSSES = (ShardedSEEProxyAnchorLoss, ShardedSoftmaxFamilyLoss)


def autocast(amp: str, device: torch.device):
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[amp])


def step_loss(network, loss_fn, images, labels, amp: str, device) -> torch.Tensor:
    """The loss of one step on every process's batch (this process's images and labels)."""
    with autocast(amp, device):
        local_embeddings = network(images)
    # The loss runs outside autocast: the kernels take half embeddings with float32 proxies.
    if isinstance(loss_fn, SHARDED_LOSSES):  # the module gathers the rows itself
        return loss_fn(local_embeddings, labels)
    return loss_fn(gather_with_grad(local_embeddings), gather(labels))


def train_one_epoch(network, loss_fn, optimizer, scaler, batches, epoch: int, config, device,
                    show_progress: bool) -> dict:
    network.train()
    sharded = isinstance(loss_fn, SHARDED_LOSSES)
    loss_sum, expanded_sum, steps = 0.0, 0, 0
    progress = tqdm(total=len(batches), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not show_progress,
                    leave=False, dynamic_ncols=True)
    for images, labels in batches.epoch(epoch):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        loss = step_loss(network, loss_fn, images, labels, config.amp, device)
        expanded = loss_fn.last_stats.num_expanded
        optimizer.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        if not sharded:
            average_gradients(loss_fn.parameters())
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        # expanded: a device tensor in the threshold mode on CUDA, read with the loss.
        loss_sum, expanded_sum, steps = loss_sum + float(loss.detach()), expanded_sum + int(expanded), steps + 1
        progress.update(1)
        progress.set_postfix(loss=f"{float(loss.detach()):.3f}")
    progress.close()
    return {"loss": loss_sum / max(steps, 1), "expanded_per_batch": expanded_sum / max(steps, 1)}
