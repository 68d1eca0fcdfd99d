"""The two traps of the expansion's schedule, each warned about once per module (docs/method.md §2).

Without step_epoch the fraction stays at its first epoch's value; past
num_epochs the schedule falls again. A loss module tells its ScheduleWarnings
when the epoch is set and when a training step ran.
"""
from __future__ import annotations

import warnings


class ScheduleWarnings:
    """Warns once when an epoch's worth of training steps ran without the epoch ever being set, and once when
    the epoch passes num_epochs.

    An epoch's worth: steps_per_epoch steps when given; otherwise as many rows as there are classes, the
    fewest an epoch can hold (every class has a sample), so the warning can come early in the first epoch
    but never later than its end.
    """

    def __init__(self, owner: str, num_classes: int, steps_per_epoch: int | None = None):
        self.owner, self.num_classes, self.steps_per_epoch = owner, num_classes, steps_per_epoch
        self.epoch_set, self.steps, self.rows, self.warned = False, 0, 0, set()

    def set_epoch(self, epoch: float, num_epochs: float) -> None:
        self.epoch_set = True
        if epoch > num_epochs:
            self._once("past", f"{self.owner}: epoch {epoch} is past num_epochs={num_epochs}; the expansion's "
                               "schedule falls again beyond it (docs/method.md §2). Build the loss with the number "
                               "of epochs you train.")

    def training_step(self, rows: int, ratio: float) -> None:
        if self.epoch_set:
            return
        self.steps, self.rows = self.steps + 1, self.rows + rows
        if self.steps_per_epoch is not None:
            done = self.steps >= self.steps_per_epoch
        else:
            done = self.rows >= self.num_classes
        if done:
            self._once("never", f"{self.owner}: an epoch's worth of training steps ran and step_epoch was never "
                                f"called, so the expansion stays at its first epoch's ratio {ratio:g} "
                                "(docs/method.md §2); call loss.step_epoch(epoch) at the start of each epoch")

    def _once(self, key: str, message: str) -> None:
        if key not in self.warned:
            self.warned.add(key)
            warnings.warn(message, UserWarning, stacklevel=4)
