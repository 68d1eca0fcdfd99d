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


# build_optimizer's second group: the proxies.
PROXY_GROUP = 1


def split_state(state: dict) -> tuple[dict, dict]:
    """(the network's part, the proxies' part) of the state_dict of build_optimizer's optimizer:
    each with every group's settings and the per-parameter state (Adam's moments) of its own
    group only, so that a run with sharded proxies stores the network's state once."""
    proxy_ids = set(state["param_groups"][PROXY_GROUP]["params"])

    def part(proxies: bool) -> dict:
        return {"state": {k: v for k, v in state["state"].items() if (k in proxy_ids) == proxies},
                "param_groups": state["param_groups"]}

    return part(False), part(True)


def merge_state(network_part: dict, proxies_part: dict) -> dict:
    """The optimizer's state_dict from the two parts split_state gave."""
    return {"state": {**network_part["state"], **proxies_part["state"]}, "param_groups": network_part["param_groups"]}


# The step schedule's fall: the usual tenth, held over the last floor(epochs / 3) epochs so
# that the curves show whether the lower rate has levelled off.
STEP_FACTOR = 0.1


def first_step_epoch(epochs: int) -> int:
    """The first epoch (0-based) at the step schedule's lower rate: ceil(2·epochs/3), which
    leaves floor(epochs/3) epochs at it (none below 3 epochs: TrainConfig refuses that)."""
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
    """The schedule in words for a report whose runs last `epochs` (one count per cell kind),
    read from the factors schedule_factor applies."""
    if schedule == "step":
        spans = []
        for count in epochs:
            lowered = [e + 1 for e in range(count) if schedule_factor(schedule, e, count) != 1.0]
            spans.append(f"{lowered[0]}-{count} of {count}" if lowered else f"none of {count}")
        return f"both ×{STEP_FACTOR:g} over epochs {' and '.join(spans)} (counting from 1)"
    return {"constant": "both constant", "cosine": "both on a cosine to ~0"}[schedule]


def set_epoch_learning_rates(optimizer: torch.optim.Optimizer, config, epoch: int) -> None:
    factor = schedule_factor(config.lr_schedule, config.schedule_epoch(epoch), config.schedule_span)
    for group, base in zip(optimizer.param_groups, (config.lr, config.proxy_lr)):
        group["lr"] = base * factor
