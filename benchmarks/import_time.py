"""What `import see_cuda` costs beyond `import torch`, read from `python -X importtime`.

    python benchmarks/import_time.py               # 5 fresh interpreters, the median
    python benchmarks/import_time.py --runs 9 --module see_cuda.train.cli

Each run is a fresh interpreter (`python -X importtime -c "import MODULE"`); the cost of
MODULE beyond torch is its cumulative import time minus torch's (see_cuda imports torch
first, so torch's time lies inside it). Also reports whether the import pulled in
torch._dynamo, the heaviest thing the package used to import. The goal is at most 0.2 s.
These are wall times: on a busy machine other processes stretch them, so compare runs
made on an idle one (the spread of the runs shows how busy it was).
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys

# "import time:       self [us] |  cumulative | imported package", one line per module.
LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")
GOAL_SECONDS = 0.2


def cumulative_seconds(report: str) -> dict[str, float]:
    """Top-level module name -> its cumulative import time in seconds, from an -X importtime report."""
    times = {}
    for line in report.splitlines():
        match = LINE.match(line)
        if match:
            times.setdefault(match.group(4), int(match.group(2)) / 1e6)
    return times


def one_run(python: str, module: str) -> tuple[float, float, bool]:
    """(module's seconds beyond torch, torch's seconds, whether torch._dynamo was imported)."""
    code = f"import {module}, sys; print('torch._dynamo' in sys.modules)"
    done = subprocess.run([python, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True)
    times = cumulative_seconds(done.stderr)
    top = module.split(".")[0]
    return times[top] - times["torch"], times["torch"], done.stdout.strip() == "True"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters to time")
    parser.add_argument("--module", default="see_cuda", help="the module to import")
    parser.add_argument("--python", default=sys.executable, help="the interpreter to time")
    args = parser.parse_args(argv)
    runs = [one_run(args.python, args.module) for _ in range(args.runs)]
    beyond = statistics.median(run[0] for run in runs)
    torch_seconds = statistics.median(run[1] for run in runs)
    dynamo = any(run[2] for run in runs)
    print(f"import {args.module}: {beyond:.3f} s beyond torch (median of {args.runs}; runs "
          f"{', '.join(f'{run[0]:.3f}' for run in runs)}); import torch: {torch_seconds:.3f} s; "
          f"torch._dynamo imported: {dynamo}; goal: at most {GOAL_SECONDS} s beyond torch "
          f"({'met' if beyond <= GOAL_SECONDS else 'NOT met'})")


if __name__ == "__main__":
    main()
