"""The report of a grid of PA vs SEE cells: one table per metric (a row per cell), SEE − PA R@1
against the embedding size (a line per class count), and the R@1 curves of every cell. Cells of
several base losses (see-compare --base-losses) add a loss column, and a line per loss and
class count."""
from __future__ import annotations

import json
import math
import os

from ..data.files import write_text_atomically
from .paired_stats import difference_and_interval, mean_and_spread
from .plots import can_plot, draw_recall_at_1, fitted_title, pyplot, save_figure
from .report import NAMES

TABLE_METRICS = ("recall@1", "recall@2", "map@r")
SUMMARY_FILES = ("summary.md", "summary.json", "see_minus_pa_recall_at_1.png", "recall_at_1_curves.png",
                 "recall_at_1_late_curves.png")
# The late-curve figure's share of the epochs: its scale shows whether PA has levelled off,
# which the whole climb's scale hides.
LATE_FRACTION = 0.5


def late_gain_start(epochs: int) -> int:
    """The epoch (0-based) whose R@1 the late gain starts from: a quarter of the epochs, at
    least one, before the last."""
    return max(0, epochs - 1 - max(1, epochs // 4))


def late_gain(runs: dict) -> float:
    """Mean R@1 gain (points) of the runs over their last quarter of epochs: ~0 at a plateau."""
    gains = []
    for rows in runs.values():
        start = rows[late_gain_start(len(rows))]
        gains.append(100 * (rows[-1]["recall@1"] - start["recall@1"]))
    return sum(gains) / len(gains) if gains else float("nan")


def seconds_per_run(runs: dict) -> float:
    """Mean training + evaluation seconds of the runs (what the loop measured, not start-up)."""
    totals = [sum(row.get("train_seconds", 0.0) + row.get("eval_seconds", 0.0) for row in rows)
              for rows in runs.values()]
    return sum(totals) / len(totals) if totals else float("nan")


def cell_row(result: dict) -> dict:
    cell, summary = result["cell"], result["summary"]
    return {"cell": cell.name, "base_loss": cell.base_loss, "embedding_size": cell.embedding_size,
            "train_classes": cell.train_classes,
            "seeds": summary["seeds"], "epochs": len(next(iter(result["histories"]["pa"].values()))),
            "pa_late_gain_r1": late_gain(result["histories"]["pa"]),
            "see_late_gain_r1": late_gain(result["histories"]["see"]),
            "pa_seconds_per_run": seconds_per_run(result["histories"]["pa"]),
            "see_seconds_per_run": seconds_per_run(result["histories"]["see"]),
            "metrics": summary["metrics"]}


def line_key(row: dict) -> tuple:
    """What a line of the difference plot (and a row of the curves) holds fixed."""
    return row.get("base_loss") or "", row["train_classes"] or 0


def line_label(key: tuple) -> str:
    loss, count = key
    return (f"{loss}, " if loss else "") + (f"{count} classes" if count else "the data set's classes")


def markdown(rows: list[dict], title: str, notes: list[str]) -> str:
    per_loss = any(row.get("base_loss") for row in rows)
    # With several losses, "PA" is each row's loss trained plain.
    plain = "plain" if per_loss else "PA"
    details = "<loss>/summary.md (<loss>/cells/<cell>/summary.md in a grid)" if per_loss else "cells/<cell>/summary.md"

    def head(*columns: str) -> list[str]:
        names = (("loss",) if per_loss else ()) + ("embedding", "classes") + columns
        return ["| " + " | ".join(names) + " |", "|" + " --- |" * len(names)]

    def row_start(row: dict) -> str:
        return (f"| {row['base_loss']} " if per_loss else "") + \
            f"| {row['embedding_size']} | {row['train_classes'] or '—'} |"

    lines = [f"# {title}", "", *notes, "",
             f"Each cell: the last epoch of {plain} and {plain} + SEE runs on the same seeds (same initial weights, "
             f"batches and augmentations); %, mean ± std over seeds; SEE − {plain} is the mean paired difference with "
             "its 95% t interval. 'late gain' is the mean R@1 gain over the last quarter of the epochs (≈ 0 at a "
             f"plateau). Per-cell details: {details}; curves: recall_at_1_curves.png, and the last half "
             "of the epochs on each cell's own scale: recall_at_1_late_curves.png.", ""]
    for metric in TABLE_METRICS:
        late = metric == "recall@1"
        lines += [f"## {NAMES[metric]}", "",
                  *head("seeds", plain, f"{plain} + SEE", f"SEE − {plain} [95% CI]",
                        *((f"{plain} late gain", "SEE late gain") if late else ()))]
        for row in rows:
            m = row["metrics"][metric]
            line = (f"{row_start(row)} {len(row['seeds'])} | {mean_and_spread(m['pa'])} | "
                    f"{mean_and_spread(m['see'])} | {difference_and_interval(m['see_minus_pa'])} |")
            if late:
                line += f" {row['pa_late_gain_r1']:+.2f} | {row['see_late_gain_r1']:+.2f} |"
            lines.append(line)
        lines.append("")
    lines += ["## Time", "", "Seconds per run, training and evaluation (mean over seeds).", "",
              *head(f"{plain} s", f"{plain} + SEE s")]
    lines += [f"{row_start(row)} {row['pa_seconds_per_run']:.0f} | {row['see_seconds_per_run']:.0f} |" for row in rows]
    return "\n".join(lines) + "\n"


def plot_difference(rows: list[dict], path: str, title: str) -> None:
    """SEE − plain R@1 with its 95% interval against the embedding size, a line per (loss and) class count."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    keys = sorted({line_key(row) for row in rows})
    # A colour per loss and a line style per class count, so that either is read at a glance.
    losses = sorted({loss for loss, _ in keys})
    counts = sorted({count for _, count in keys})
    for index, key in enumerate(keys):
        mine = sorted((row for row in rows if line_key(row) == key), key=lambda r: r["embedding_size"])
        # A small horizontal offset per line keeps the intervals apart.
        xs = [row["embedding_size"] * 2 ** (0.06 * (index - (len(keys) - 1) / 2)) for row in mine]
        diffs = [row["metrics"]["recall@1"]["see_minus_pa"] for row in mine]
        means = [d["mean"] for d in diffs]
        errors = [[d["mean"] - d["low"] if not math.isnan(d["low"]) else 0 for d in diffs],
                  [d["high"] - d["mean"] if not math.isnan(d["high"]) else 0 for d in diffs]]
        axes.errorbar(xs, means, yerr=errors, marker="o", capsize=4, label=line_label(key),
                      color=f"C{losses.index(key[0]) if len(losses) > 1 else index}",
                      linestyle=("-", "--", ":", "-.")[counts.index(key[1]) % 4] if len(losses) > 1 else "-")
    axes.axhline(0, color="grey", linewidth=1)
    axes.set_xscale("log", base=2)
    dims = sorted({row["embedding_size"] for row in rows})
    axes.set_xticks(dims, [str(d) for d in dims])
    axes.set_xlabel("embedding size")
    plain = "plain" if any(row.get("base_loss") for row in rows) else "PA"
    axes.set_ylabel(f"SEE − {plain} R@1 (points, 95% CI)")
    axes.set_title(fitted_title(title, figure, 9), fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    save_figure(figure, path)


def zoom_to_late_epochs(axes, histories: dict) -> None:
    """Limit the axes to the last LATE_FRACTION of the epochs and to the R@1 seen there."""
    runs = [rows for by_seed in histories.values() for rows in by_seed.values()]
    epochs, last = min(len(rows) for rows in runs), max(len(rows) for rows in runs)
    first = max(1, min(int(epochs * (1 - LATE_FRACTION)) + 1, last - 1))  # two epochs at least
    seen = [100 * row["recall@1"] for rows in runs for row in rows[first - 1:]]
    pad = 0.05 * (max(seen) - min(seen)) + 0.05
    if first < last:
        axes.set_xlim(first, last)
    axes.set_ylim(min(seen) - pad, max(seen) + pad)


def plot_curves(results: list[dict], path: str, title: str, late: bool = False) -> None:
    """R@1 per epoch of PA and SEE in every cell: seeds thin, means thick; `late`: only the
    last LATE_FRACTION of the epochs, each cell on its own scale."""
    plt = pyplot()
    keys = sorted({(r["cell"].base_loss or "", r["cell"].train_classes or 0) for r in results})
    dims = sorted({r["cell"].embedding_size for r in results})
    # At least 6.4 inches wide: a single cell's figure must still hold the title.
    figure, grid = plt.subplots(len(keys), len(dims), figsize=(max(6.4, 3.2 * len(dims)), 2.6 * len(keys)),
                                squeeze=False, sharey=not late)
    for result in results:
        cell = result["cell"]
        axes = grid[keys.index((cell.base_loss or "", cell.train_classes or 0))][dims.index(cell.embedding_size)]
        draw_recall_at_1(axes, result["histories"], seed_alpha=0.25, seed_width=0.8, mean_width=2, label_seeds=False,
                         base_loss=cell.base_loss)
        if late:
            zoom_to_late_epochs(axes, result["histories"])
        axes.set_title((f"{cell.base_loss}, " if cell.base_loss else "") + f"{cell.embedding_size}-d"
                       + (f", {cell.train_classes} classes" if cell.train_classes else ""), fontsize=9)
    for axes in grid[-1]:
        axes.set_xlabel("epoch")
    for row in grid:
        row[0].set_ylabel("R@1 (%)")
    # A legend per row: each row is one base loss, its curves named after it.
    for row in grid if any(r["cell"].base_loss for r in results) else grid[:1]:
        row[0].legend(fontsize=8)
    title += f" (last {LATE_FRACTION:.0%} of the epochs)" if late else ""
    figure.suptitle(fitted_title(title, figure, 10), fontsize=10)
    figure.tight_layout()
    save_figure(figure, path)


def write_grid_report(out_dir: str, results: list[dict], title: str, notes: list[str], extra: dict) -> list[dict]:
    """results: [{"cell": Cell, "summary": per-cell summary, "histories": {loss: {seed: rows}}}]."""
    rows = [cell_row(result) for result in results]
    if not rows:
        return rows
    os.makedirs(out_dir, exist_ok=True)
    write_text_atomically(os.path.join(out_dir, "summary.json"),
                          json.dumps({"title": title, "cells": rows, **extra}, indent=1))
    write_text_atomically(os.path.join(out_dir, "summary.md"), markdown(rows, title, notes))
    if can_plot():
        plot_difference(rows, os.path.join(out_dir, "see_minus_pa_recall_at_1.png"), title)
        plot_curves(results, os.path.join(out_dir, "recall_at_1_curves.png"), title)
        plot_curves(results, os.path.join(out_dir, "recall_at_1_late_curves.png"), title, late=True)
    return rows
