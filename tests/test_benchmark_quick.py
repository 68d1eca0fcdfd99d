"""The throughput benchmark's smoke run: it must finish cleanly and write its JSON (speed is never checked)."""
import json
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO_ROOT, "benchmarks", "throughput.py")


def test_quick_run_writes_json_and_plot(tmp_path):
    # The benchmark of this checkout's see_cuda, whichever copy is installed.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")])))
    result = subprocess.run(
        [sys.executable, SCRIPT, "--quick", "--output-dir", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    json_files = sorted(tmp_path.glob("*.json"))
    assert len(json_files) == 1 and len(list(tmp_path.glob("*.png"))) == 1
    report = json.loads(json_files[0].read_text())

    assert set(report) >= {"date", "machine", "settings", "results", "checks_passed"}
    assert report["checks_passed"] is True
    assert set(report["machine"]) >= {"cpu_model", "torch_threads", "torch_version", "see_cuda_backends", "git_commit"}
    assert report["settings"]["device"] == "cpu" and report["settings"]["quick"] is True
    (shape_result,) = report["results"]
    assert set(shape_result["shape"]) >= {"batch", "dim", "classes", "n_expansion", "ratio", "num_expanded"}
    timed = shape_result["implementations"]
    assert {"reference", "original", "published", "matmul floor"} <= set(timed)
    assert ("pml" in timed) == ("pml" not in report["settings"]["left_out"])
    if report["machine"]["see_cuda_backends"]["cpu"]:
        assert "fused" in timed
    for name, entry in timed.items():
        assert {"median_ms", "min_ms", "max_ms", "times_ms", "ratio_to_floor", "peak_memory_bytes"} <= set(entry), name
        assert entry["min_ms"] <= entry["median_ms"] <= entry["max_ms"]
        if name != "matmul floor":
            assert entry["check"]["status"] in ("ok", "reference"), (name, entry["check"])
