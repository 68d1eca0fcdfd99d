"""Mean ± std per method and the paired difference with a t-distribution confidence interval."""
from __future__ import annotations

import math

import numpy as np


def t_quantile(probability: float, dof: int) -> float:
    """Quantile of Student's t; scipy's when installed, else bisection on a numerical CDF."""
    try:
        from scipy.stats import t
        return float(t.ppf(probability, dof))
    except ImportError:
        low, high = 0.0, 1000.0
        for _ in range(100):
            middle = (low + high) / 2
            low, high = (middle, high) if _t_cdf(middle, dof) < probability else (low, middle)
        return (low + high) / 2


def _t_cdf(x: float, dof: int, steps: int = 20000) -> float:
    """P(T <= x) for x >= 0 by Simpson's rule on the density over [0, x]."""
    log_norm = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)
    grid = np.linspace(0.0, x, steps + 1)
    density = np.exp(log_norm - (dof + 1) / 2 * np.log1p(grid**2 / dof))
    weights = np.ones(steps + 1)
    weights[1:-1:2], weights[2:-1:2] = 4, 2
    return 0.5 + float((weights * density).sum() * (x / steps) / 3)


def summarize(values) -> dict:
    values = np.asarray(values, dtype=float)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
            "n": int(values.size)}


def paired_difference(treatment, control, confidence: float = 0.95) -> dict:
    """Mean of treatment − control over paired seeds, and its t interval (n − 1 degrees of freedom)."""
    differences = np.asarray(treatment, dtype=float) - np.asarray(control, dtype=float)
    n = differences.size
    mean = float(differences.mean())
    if n < 2:
        return {"mean": mean, "low": float("nan"), "high": float("nan"), "n": n, "differences": differences.tolist()}
    half_width = t_quantile(0.5 + confidence / 2, n - 1) * differences.std(ddof=1) / math.sqrt(n)
    return {"mean": mean, "low": mean - half_width, "high": mean + half_width, "n": n,
            "differences": differences.tolist()}


def mean_and_spread(summary: dict) -> str:
    """A summarize() result as "mean ± std" in %, or the mean alone for one seed (no spread to show)."""
    return f"{summary['mean']:.2f} ± {summary['std']:.2f}" if summary["n"] > 1 else f"{summary['mean']:.2f}"


def difference_and_interval(difference: dict) -> str:
    """A paired_difference() result as "+mean [+low, +high]", or "+mean (one seed: no interval)"."""
    if difference["n"] < 2:
        return f"{difference['mean']:+.2f} (one seed: no interval)"
    return f"{difference['mean']:+.2f} [{difference['low']:+.2f}, {difference['high']:+.2f}]"
