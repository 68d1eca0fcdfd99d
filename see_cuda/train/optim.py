"""AdamW with two parameter groups: the network, and the proxies at their own, larger rate."""
from __future__ import annotations

import torch


def build_optimizer(model: torch.nn.Module, proxies: torch.nn.Parameter, lr: float, proxy_lr: float,
                    weight_decay: float) -> torch.optim.AdamW:
    return torch.optim.AdamW([
        {"params": list(model.parameters()), "lr": lr, "weight_decay": weight_decay},
        # No decay on the proxies: only their direction matters to the loss.
        {"params": [proxies], "lr": proxy_lr, "weight_decay": 0.0},
    ])
