"""Plotting shared by the comparison reports: headless pyplot, atomic PNG writes, R@1 curves."""
from __future__ import annotations

import importlib.util
import textwrap

from ..data.files import write_atomically

# The colour of each condition's curves: the base loss trained plain, and with SEE.
COLOURS = (("pa", "tab:blue"), ("see", "tab:red"))
# How the reports name each base loss (see-train's --base-loss); None: Proxy-Anchor.
LOSS_NAMES = {None: "PA", "proxy-anchor": "PA", "proxy-nca": "Proxy-NCA", "normalized-softmax": "NSoftmax",
              "cosface": "CosFace", "arcface": "ArcFace"}


def condition_labels(base_loss: str | None) -> dict[str, str]:
    """{"pa": the loss's name, "see": its name + SEE}: the two conditions of a comparison."""
    name = LOSS_NAMES[base_loss]
    return {"pa": name, "see": f"{name} + SEE"}


_SKIPPED_SAID = []  # the skip is said once per process


def matplotlib_installed() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def can_plot() -> bool:
    """Whether matplotlib imports here; without it the reports leave out their plots, saying so once."""
    if matplotlib_installed():
        return True
    if not _SKIPPED_SAID:
        _SKIPPED_SAID.append(True)
        print("matplotlib is not installed: the reports are written without their plots (pip install "
              "'see_cuda[train]', or matplotlib, adds them)", flush=True)
    return False


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed); imported only when a plot is made."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fitted_title(title: str, figure, fontsize: float) -> str:
    """The title broken into lines that fit the figure's width (tight_layout does not wrap)."""
    # An average character of the default sans serif is about 0.55 em wide.
    per_line = max(20, int(figure.get_figwidth() * 72 / (0.55 * fontsize)) - 4)
    return textwrap.fill(title, per_line)


def save_figure(figure, path: str) -> None:
    """Write the figure as a PNG, whole or not at all, and free it."""
    try:
        write_atomically(path, lambda handle: figure.savefig(handle, format="png", dpi=120))
    finally:
        pyplot().close(figure)


def draw_recall_at_1(axes, histories: dict, seed_alpha: float, seed_width: float, mean_width: float,
                     label_seeds: bool, base_loss: str | None = None) -> None:
    """R@1 per epoch of the base loss plain and with SEE on `axes`: each seed thin, their mean thick.

    histories[loss][seed] = per-epoch rows; the mean runs over the epochs every seed has.
    """
    labels = condition_labels(base_loss)
    for loss, colour in COLOURS:
        label = labels[loss]
        runs = [rows for _, rows in sorted(histories[loss].items())]
        for index, rows in enumerate(runs):
            seed_label = f"{label} (each seed)" if label_seeds and index == 0 else None
            axes.plot([r["epoch"] for r in rows], [100 * r["recall@1"] for r in rows], color=colour,
                      alpha=seed_alpha, linewidth=seed_width, label=seed_label)
        length = min(len(rows) for rows in runs)
        mean = [sum(100 * rows[e]["recall@1"] for rows in runs) / len(runs) for e in range(length)]
        axes.plot(range(1, length + 1), mean, color=colour, linewidth=mean_width,
                  label=f"{label} (mean)" if label_seeds else label)
    axes.grid(alpha=0.3)
