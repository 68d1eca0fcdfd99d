"""Per-epoch metrics as metrics.json (with the config) and metrics.csv, rewritten atomically.

They are written after the epoch's checkpoint, from the history it holds, so they never
list an epoch that no checkpoint has; a resume rewrites them from the checkpoint.
"""
from __future__ import annotations

import csv
import io
import json
import os

from ..data.files import write_text_atomically


def write_metrics(out_dir: str, config: dict, history: list[dict]) -> None:
    write_text_atomically(os.path.join(out_dir, "metrics.json"),
                          json.dumps({"config": config, "history": history}, indent=1))
    columns = list(dict.fromkeys(key for row in history for key in row))
    table = io.StringIO()
    writer = csv.DictWriter(table, columns)
    writer.writeheader()
    writer.writerows(history)
    write_text_atomically(os.path.join(out_dir, "metrics.csv"), table.getvalue())
