"""A plain vs SEE comparison of one base loss as a markdown table, a JSON file and a plot of R@1 per epoch."""
from __future__ import annotations

import json
import os

from ..data.files import write_text_atomically
from .paired_stats import difference_and_interval, mean_and_spread, paired_difference, summarize
from .plots import can_plot, condition_labels, draw_recall_at_1, fitted_title, pyplot, save_figure

METRICS = ("recall@1", "recall@2", "recall@4", "map@r")
NAMES = {"recall@1": "R@1", "recall@2": "R@2", "recall@4": "R@4", "map@r": "MAP@R"}


def summarize_runs(histories: dict[str, dict[int, list[dict]]]) -> dict:
    """histories[loss][seed] = per-epoch rows; the last epoch of each run is scored (in %)."""
    seeds = sorted(set(histories["pa"]) & set(histories["see"]))
    final = {loss: {seed: histories[loss][seed][-1] for seed in seeds} for loss in ("pa", "see")}
    table = {}
    for metric in METRICS:
        values = {loss: [100 * final[loss][seed][metric] for seed in seeds] for loss in ("pa", "see")}
        table[metric] = {"pa": summarize(values["pa"]), "see": summarize(values["see"]),
                         "see_minus_pa": paired_difference(values["see"], values["pa"]),
                         "per_seed": {"pa": values["pa"], "see": values["see"]}}
    return {"seeds": seeds, "metrics": table}


def markdown(summary: dict, title: str, notes: list[str], base_loss: str | None = None) -> str:
    label = condition_labels(base_loss)
    plain, see = label["pa"], label["see"]
    lines = [f"# {title}", "", *notes, "",
             f"Last epoch, {len(summary['seeds'])} paired seeds {summary['seeds']} (same seed: same initial weights, "
             f"batches and augmentations for {plain} and {see}); %, mean ± std over seeds; SEE − {plain} is the "
             "mean paired difference with its 95% t interval.", "",
             f"| metric | {plain} | {see} | SEE − {plain} [95% CI] |", "| --- | --- | --- | --- |"]
    for metric, row in summary["metrics"].items():
        lines.append(f"| {NAMES[metric]} | {mean_and_spread(row['pa'])} | {mean_and_spread(row['see'])} | "
                     f"{difference_and_interval(row['see_minus_pa'])} |")
    lines += ["", "Per seed, R@1 (%):", "", f"| seed | {plain} | {see} | SEE − {plain} |", "| --- | --- | --- | --- |"]
    r1 = summary["metrics"]["recall@1"]["per_seed"]
    for seed, pa, see in zip(summary["seeds"], r1["pa"], r1["see"]):
        lines.append(f"| {seed} | {pa:.2f} | {see:.2f} | {see - pa:+.2f} |")
    return "\n".join(lines) + "\n"


def plot_recall_at_1(histories: dict, path: str, title: str, base_loss: str | None = None) -> None:
    figure, axes = pyplot().subplots(figsize=(6, 4))
    draw_recall_at_1(axes, histories, seed_alpha=0.35, seed_width=1, mean_width=2.5, label_seeds=True,
                     base_loss=base_loss)
    axes.set_xlabel("epoch")
    axes.set_ylabel("R@1 (%)")
    axes.set_title(fitted_title(title, figure, 9), fontsize=9)
    axes.legend()
    figure.tight_layout()
    save_figure(figure, path)


def write_report(out_dir: str, histories: dict, title: str, notes: list[str], extra: dict,
                 base_loss: str | None = None) -> dict:
    """base_loss: the loss compared plain against SEE (see-train's --base-loss); None: Proxy-Anchor."""
    summary = summarize_runs(histories)
    summary.update(extra)
    write_text_atomically(os.path.join(out_dir, "summary.json"), json.dumps(summary, indent=1))
    write_text_atomically(os.path.join(out_dir, "summary.md"), markdown(summary, title, notes, base_loss))
    if can_plot():
        plot_recall_at_1(histories, os.path.join(out_dir, "recall_at_1.png"), title, base_loss)
    return summary
