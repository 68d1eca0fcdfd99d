"""Checks that need more than the flags' values, made before anything is trained: that the
output folder can be written, and that Recall@K's K fit the evaluation set. Each error is a
FlagError naming the flag."""
from __future__ import annotations

import os
import tempfile

from ..data.files import remove_stale_temporaries
from . import checkpoint
from .config import FlagError


def prepare_out_dir(out_dir: str, flag: str = "--out-dir") -> list[str]:
    """Creates out_dir, checks that a file can be written there, and removes the temporary
    files of processes killed while writing there (returns their paths)."""
    try:
        os.makedirs(out_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir, prefix=".write-check-"):
            pass
    except OSError as error:
        raise FlagError(f"{flag} {out_dir} cannot be written to ({error.strerror or error})") from error
    return remove_stale_temporaries(out_dir)


# What a run leaves in its --out-dir (its checkpoint, and metrics_log's metrics).
RUN_FILES = (checkpoint.FILENAME, "metrics.json")


def refuse_to_overwrite(out_dir: str, resume: bool) -> None:
    """A folder that holds a run is continued with --resume, never overwritten without it."""
    found = [name for name in RUN_FILES if os.path.isfile(os.path.join(out_dir, name))]
    if found and not resume:
        raise FlagError(f"--out-dir {out_dir} already holds a run ({', '.join(found)}); pass --resume to continue "
                        "or extend it (with a larger --epochs), or choose another --out-dir")


def check_ks_fit(ks, searchable: int, what: str) -> None:
    """Every K of Recall@K at most the items a query can retrieve."""
    if searchable < 1:
        raise FlagError(f"{what} has no two items to search among; is --data-root the whole data set?")
    if max(ks) > searchable:
        raise FlagError(f"--ks holds {max(ks)}, but a query of {what} can retrieve only {searchable} items")
