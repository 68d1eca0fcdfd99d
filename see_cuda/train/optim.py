"""AdamW with two parameter groups: the network, and the proxies at their own, larger rate;
and the per-epoch learning-rate schedule."""
from __future__ import annotations

import math

import torch

from .config import LR_SCHEDULES


def build_optimizer(model: torch.nn.Module, proxies: torch.nn.Parameter, lr: float, proxy_lr: float,
                    weight_decay: float) -> torch.optim.AdamW:
    return torch.optim.AdamW([
        {"params": list(model.parameters()), "lr": lr, "weight_decay": weight_decay},
        # No decay on the proxies: only their direction matters to the loss.
        {"params": [proxies], "lr": proxy_lr, "weight_decay": 0.0},
    ])


# The step schedule's fall: the usual tenth, held over the last third of the epochs so that
# the curves show whether the lower rate has levelled off.
STEP_FACTOR = 0.1


def first_step_epoch(epochs: int) -> int:
    """The first epoch (0-based) of the step schedule's last third, at the lower rate."""
    return math.ceil(2 * epochs / 3)


def schedule_factor(schedule: str, epoch: int, epochs: int) -> float:
    """The learning rates' multiplier during `epoch` (0-based) of `epochs`: 1; a cosine from
    ~1 to ~0 taken at the epoch's middle; or 1 then STEP_FACTOR from first_step_epoch on. A
    function of the epoch alone, so a resumed run gets the same rates."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * (epoch + 0.5) / epochs))
    if schedule == "step":
        return 1.0 if epoch < first_step_epoch(epochs) else STEP_FACTOR
    raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {schedule!r}")


def schedule_note(schedule: str, epochs: list[int]) -> str:
    """The schedule in words for a report whose runs last `epochs` (one count per cell kind)."""
    if schedule == "step":
        falls = " and ".join(f"{first_step_epoch(count) + 1} of {count}" for count in epochs)
        return f"both ×{STEP_FACTOR:g} from epoch {falls} (counting from 1)"
    return {"constant": "both constant", "cosine": "both on a cosine to ~0"}[schedule]


def set_epoch_learning_rates(optimizer: torch.optim.Optimizer, config, epoch: int) -> None:
    factor = schedule_factor(config.lr_schedule, config.schedule_epoch(epoch), config.schedule_span)
    for group, base in zip(optimizer.param_groups, (config.lr, config.proxy_lr)):
        group["lr"] = base * factor
