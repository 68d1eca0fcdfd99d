"""Per-epoch metrics as metrics.json (with the config) and metrics.csv, rewritten atomically."""
from __future__ import annotations

import csv
import io
import json
import os


def write_atomically(path: str, text: str) -> None:
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def write_metrics(out_dir: str, config: dict, history: list[dict]) -> None:
    write_atomically(os.path.join(out_dir, "metrics.json"), json.dumps({"config": config, "history": history}, indent=1))
    columns = list(dict.fromkeys(key for row in history for key in row))
    table = io.StringIO()
    writer = csv.DictWriter(table, columns)
    writer.writeheader()
    writer.writerows(history)
    write_atomically(os.path.join(out_dir, "metrics.csv"), table.getvalue())
