"""What a benchmark run writes: the machine it ran on, a table, a JSON file and a plot."""
from __future__ import annotations

import json
import os
import platform
import subprocess

import torch

import see_cuda

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def machine_info(device: str) -> dict:
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "see_cuda_version": see_cuda.__version__,
        "see_cuda_backends": see_cuda.backends(),
        "gpu_name": torch.cuda.get_device_name() if device == "cuda" else None,
        "git_commit": _git_commit(),
        # Other work on the machine shows up as spread in the timings.
        "load_average_1m_at_start": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


# ---------------------------------------------------------------- stdout
def format_header(machine: dict, settings: dict) -> str:
    """What ran where and how, printed before the tables."""
    device = settings["device"]
    where = f"{machine['cpu_model']}, {machine['torch_threads']} torch threads"
    if machine["gpu_name"]:
        where += f", {machine['gpu_name']}"
    lines = [
        f"see_cuda throughput on {device} {settings['dtype']}: {where}; load average "
        f"{machine['load_average_1m_at_start']}; see_cuda.backends() {machine['see_cuda_backends']}",
    ]
    for name, why in settings.get("left_out", {}).items():
        lines.append(f"  {name}: not timed, its column is left out ({why})")
    lines += [
        f"  forward+backward, median of {settings['repeats']} interleaved repeats after {settings['warmup']} warm-up",
        f"  labels: {settings['label_pattern']}",
        f"  memory: {settings['memory_method']}",
        "",
    ]
    return "\n".join(lines)


def format_table(result: dict) -> str:
    """The stdout table of one shape's results."""
    s = result["shape"]
    lines = [
        f"{result['name']}: B={s['batch']} D={s['dim']} C={s['classes']} n={s['n_expansion']} ratio={s['ratio']}"
        f" -> k={s['num_expanded']} expanded, m={s['num_synthetic']} synthetic rows",
        f"  {'implementation':<14}{'median ms':>11}{'min-max ms':>20}{'x floor':>9}{'peak MB':>10}  check",
    ]
    for name, r in result["implementations"].items():
        if r.get("median_ms") is None:
            lines.append(f"  {name:<14}{'-':>11}{'':>20}{'':>9}{'':>10}  {r['check']['status']}")
            continue
        spread = f"{_ms(r['min_ms'])}-{_ms(r['max_ms'])}"
        ratio = f"{r['ratio_to_floor']:.1f}" if r.get("ratio_to_floor") else "-"
        memory = f"{r['peak_memory_bytes'] / 2**20:.1f}" if r.get("peak_memory_bytes") is not None else "n/a"
        note = _check_note(r.get("check"))
        lines.append(f"  {name:<14}{_ms(r['median_ms']):>11}{spread:>20}{ratio:>9}{memory:>10}  {note}")
    for label, value in result["speedups"].items():
        lines.append(f"  speed-up {label.replace('_', ' ')}: {value:.2f}x")
    return "\n".join(lines)


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _check_note(check: dict | None) -> str:
    if check is None:
        return ""
    if check["status"] in ("ok", "MISMATCH"):
        note = f"; {check['note']}" if check.get("note") else ""
        return f"{check['status']} vs {check['against']} (|diff| {check['abs_error']:.1e}{note})"
    return check["status"]


# ---------------------------------------------------------------- files
def write_json(report: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")


def write_plot(report: dict, path: str) -> None:
    """Median ms per implementation and shape, log scale, with min-max whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = report["results"]
    names = report["settings"]["implementations"]
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.9 * len(shapes)), 4.5))
    for i, name in enumerate(names):
        xs, medians, low, high = [], [], [], []
        for j, result in enumerate(shapes):
            r = result["implementations"].get(name, {})
            if r.get("median_ms") is None:
                continue
            xs.append(j + (i - (len(names) - 1) / 2) * width)
            medians.append(r["median_ms"])
            low.append(r["median_ms"] - r["min_ms"])
            high.append(r["max_ms"] - r["median_ms"])
        ax.bar(xs, medians, width, yerr=[low, high], capsize=2, label=name)
    ax.set_xticks(range(len(shapes)), [r["name"] for r in shapes])
    ax.set_yscale("log")
    ax.set_ylabel("forward + backward, ms (median, min-max)")
    settings, machine = report["settings"], report["machine"]
    where = machine["gpu_name"] or f"{machine['cpu_model']}, {machine['torch_threads']} threads"
    ax.set_title(f"SEE loss throughput, {settings['device']} {settings['dtype']} ({where})", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
