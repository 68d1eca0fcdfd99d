"""What a SEE loss call reports besides the loss."""
from __future__ import annotations

from typing import NamedTuple

import torch


class SEEStats(NamedTuple):
    """Statistics of one SEE loss call.

    num_expanded: how many samples of the batch were expanded (k): an int,
        except in the threshold mode on CUDA by the one-call op, where k is
        known only on the device and is a 0-d int64 tensor there (int() of it
        waits for the GPU: reading it is the caller's choice).
    num_synthetic: how many synthetic points entered the loss (k·n), alike.
    mean_positive_cosine: mean over the batch of x̂_i·p̂_{y_i}, a 0-d tensor on
        the input's device (kept there so that reading it is the caller's choice).
    """

    num_expanded: int | torch.Tensor
    num_synthetic: int | torch.Tensor
    mean_positive_cosine: torch.Tensor
