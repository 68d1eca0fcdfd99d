"""What a run was trained with, recorded in its checkpoint and metrics, and the check that a
`--resume` (or a comparison reusing a run) asks for the same training.

A resumed run may change only the flags of RUN_ONLY_FIELDS: where it writes, what it
shows, when it stops, and how many threads or workers compute it (these may change the
last bits of floating-point sums, never what is trained). Every other flag changes
training, and a checkpoint made with another value is refused, never continued. The
backbone weights count by content, so a moved weights file is the same run.
"""
from __future__ import annotations

import hashlib
import os

RUN_ONLY_FIELDS = ("out_dir", "resume", "stop_after", "progress", "threads", "workers", "eval_batch_size")
# --epochs may also grow on --resume (an extension): see keep_the_recorded_schedule.
WEIGHTS_DIGEST = "backbone_weights_sha256"
# The expansion's flags: a plain run (--loss pa) trains the same whatever their values, so that
# one plain run serves comparisons with SEE at several λ (a follow-up reuses the grid's plain runs).
EXPANSION_ONLY_FIELDS = ("n_expansion", "lam", "rho_min", "rho_max")
# Flags added after runs were recorded without them: such a run was trained with this value.
VALUES_BEFORE_THE_FLAG = {"shard_proxies": False, "glyphs_train_faces": None}


class ConfigMismatchError(ValueError):
    """A run folder holds a run trained with other values of flags that change training."""


def file_digest(path: str | None) -> str | None:
    if not path or not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recorded_config(config) -> dict:
    """The config as stored with a run: every field, plus the backbone weights' digest."""
    return {**config.as_dict(), WEIGHTS_DIGEST: file_digest(config.backbone_weights)}


def training_fields(record: dict) -> dict:
    """The part of a recorded config that training depends on (the schedules' span spelled out)."""
    record = {**VALUES_BEFORE_THE_FLAG, **record}
    record["schedule_epochs"] = record.get("schedule_epochs") or record.get("epochs")
    ignored = RUN_ONLY_FIELDS + ("backbone_weights",) + (EXPANSION_ONLY_FIELDS if record.get("loss") == "pa" else ())
    return {key: value for key, value in record.items() if key not in ignored}


def keep_the_recorded_schedule(config, recorded: dict | None) -> None:
    """`--resume --epochs N` past the recorded run's epochs extends it: the schedules keep the recorded
    span (and hold their last values past it), unless --schedule-epochs says otherwise."""
    if recorded is not None and config.schedule_epochs is None and config.epochs > recorded.get("epochs", 0):
        config.schedule_epochs = training_fields(recorded)["schedule_epochs"]


def extends(old: dict, new: dict) -> bool:
    """Whether `new` trains the run `old` for more epochs with the same schedules."""
    return new.get("epochs", 0) > old.get("epochs", 0) and new["schedule_epochs"] == old["schedule_epochs"]


def flag(name: str) -> str:
    return "--" + name.replace("_", "-") if name != WEIGHTS_DIGEST else "--backbone-weights (file content)"


def differences(recorded: dict, current: dict) -> list[str]:
    """'--flag: recorded -> current' for every training field that differs."""
    old, new = training_fields(recorded), training_fields(current)
    if extends(old, new):  # more epochs on the same schedules: the first epochs are the recorded run's
        old.pop("epochs"), new.pop("epochs")
    return [f"{flag(key)}: {old.get(key)!r} -> {new.get(key)!r}"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def check_same_training(recorded: dict | None, config, where: str) -> None:
    """Raises ConfigMismatchError naming each flag whose value differs from the recorded run's."""
    if recorded is None:
        raise ConfigMismatchError(f"{where} has no record of the flags it was trained with (an older checkpoint), "
                                  "so it cannot be continued safely; use a new --out-dir")
    changed = differences(recorded, recorded_config(config))
    if changed:
        allowed = ", ".join(flag(name) for name in RUN_ONLY_FIELDS)
        raise ConfigMismatchError(
            f"{where} was trained with other values of flags that change training "
            f"({'; '.join(changed)}); rerun with the recorded values or use a new output folder "
            f"(only {allowed} may change on --resume)")
