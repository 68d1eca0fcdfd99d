"""scripts/gpu_check.sh and the scripts it uses: syntax, the output rules, the junit reading, the smoke run's coverage.

The whole dry run takes a minute or more: it is marked slow and runs only when
asked for (`pytest -m slow tests/test_gpu_check.py`).
"""
import os
import subprocess
import sys
import time

import pytest
import torch

from conftest import requires_cpu_kernels

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(REPO_ROOT, "scripts")
sys.path.insert(0, SCRIPTS)

import check_outputs  # noqa: E402
import cuda_smoke  # noqa: E402
import junit_summary  # noqa: E402

SHELL_SCRIPTS = ["gpu_check.sh", "gpu_wheels.sh", "check_build_with_torch.sh"]


@pytest.mark.parametrize("script", SHELL_SCRIPTS)
def test_shell_script_parses(script):
    result = subprocess.run(["bash", "-n", os.path.join(SCRIPTS, script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_help_and_unknown_options():
    script = os.path.join(SCRIPTS, "gpu_check.sh")
    usage = subprocess.run(["bash", script, "--help"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 0 and "--dry-run" in usage.stdout and "at most 8 files" in usage.stdout
    wrong = subprocess.run(["bash", script, "--no-such-option"], capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "unknown option" in wrong.stderr


def write(path, text="x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_output_rules_accept_what_the_script_writes(tmp_path):
    names = ["summary.txt", "build.log", "run.log", "sanitizer.log", "throughput_cuda_float32_2026-11-29.json",
             "throughput_cuda_float32_2026-11-29.png", "throughput_cuda_bfloat16_2026-11-29.json",
             "throughput_cuda_bfloat16_2026-11-29.png"]
    for name in names:
        write(tmp_path / name)
    write(tmp_path / "a" / "b" / "two_folders_deep.txt")
    os.remove(tmp_path / "sanitizer.log")  # still 8 files with the nested one
    files, problems = check_outputs.problems_in(str(tmp_path))
    assert problems == []
    assert len(files) == 8 and os.path.join("a", "b", "two_folders_deep.txt") in files


def test_output_rules_name_each_broken_rule(tmp_path):
    for i in range(8):
        write(tmp_path / f"file{i}.txt")
    write(tmp_path / "bad name.txt")
    write(tmp_path / "a" / "b" / "c" / "deep.txt")
    os.symlink(tmp_path / "file0.txt", tmp_path / "link.txt")
    files, problems = check_outputs.problems_in(str(tmp_path))
    assert len(files) == 10
    text = "\n".join(problems)
    assert "'bad name.txt': a name with characters" in text
    assert "deep.txt: 3 folders deep (at most 2)" in text
    assert "link.txt: a link" in text
    assert "10 files (at most 8)" in text
    assert check_outputs.main([str(tmp_path)]) == 1
    assert check_outputs.problems_in(str(tmp_path / "missing"))[1] == [f"{tmp_path / 'missing'} is not a folder"]


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="2" failures="1"
skipped="3" tests="9">
<testcase classname="" name="tests.test_proxy_anchor"><error message="collection failure">ImportError while importing
E   ModuleNotFoundError: No module named 'pytorch_metric_learning'</error></testcase>
<testcase classname="tests.test_slerp" name="test_a"><failure message="boom">assert 1 == 2</failure></testcase>
<testcase classname="tests.test_slerp" name="test_b"><error message="fixture">fixture failed</error></testcase>
</testsuite></testsuites>"""


def test_junit_summary_separates_collection_from_test_outcomes(tmp_path):
    report = tmp_path / "report.xml"
    report.write_text(JUNIT)
    (tests, collection) = junit_summary.summarise(str(report))
    # 9 cases: 1 module not collected, 1 failure, 1 error, 3 skipped, so 3 passed
    assert tests == ("tests", "failed", "3 passed, 1 failed, 1 errors, 3 skipped")
    assert collection[:2] == ("collection", "failed")
    assert "tests.test_proxy_anchor (ModuleNotFoundError: No module named 'pytorch_metric_learning')" in collection[2]


def test_junit_summary_without_a_report(tmp_path):
    outcomes = junit_summary.summarise(str(tmp_path / "absent.xml"))
    assert [status for _, status, _ in outcomes] == ["failed", "failed"]


@requires_cpu_kernels
def test_smoke_run_calls_every_forward_op():
    """Each operator of the extension (backward ops run through autograd) has a case on every device."""
    registered = {name.split("::")[1] for name in torch._C._dispatch_get_all_op_names()
                  if name.startswith("see_cuda::")}
    forward_ops = {name for name in registered if not name.endswith("_backward")}
    covered = {op for _, op, _ in cuda_smoke.cases("cpu", [torch.float32])}
    assert forward_ops <= covered


@pytest.mark.slow
def test_dry_run_passes_and_keeps_the_output_rules(tmp_path, request):
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("the whole dry run takes a minute or more: run it with -m slow")
    env = dict(os.environ, PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
               PYTHON=sys.executable)
    result = subprocess.run(["bash", os.path.join(SCRIPTS, "gpu_check.sh"), "--dry-run", str(tmp_path)],
                            capture_output=True, text=True, timeout=1500, env=env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = (tmp_path / "summary.txt").read_text()
    for stage in ("smoke", "cuda tests", "bench float32", "output rules"):
        assert any(line.startswith(stage) and " passed " in line for line in summary.splitlines()), (stage, summary)
    files, problems = check_outputs.problems_in(str(tmp_path))
    assert problems == [] and len(files) <= 8


# ---------------------------------------------------------------- the output folder, before any stage
def gpu_check(*args, cwd=REPO_ROOT, out=None):
    env = {key: value for key, value in os.environ.items() if key != "OUT"}
    if out is not None:
        env["OUT"] = out
    return subprocess.run(["bash", os.path.join(SCRIPTS, "gpu_check.sh"), *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd, env=env)


@pytest.mark.parametrize("where", ["under a file", "read-only"])
def test_an_unwritable_output_folder_stops_before_any_stage(tmp_path, where):
    if where == "under a file":
        (tmp_path / "file").write_text("x")
        out = str(tmp_path / "file" / "out")
    else:
        out = "/proc"  # exists, and no process may create a file in it
        if not os.path.isdir(out):
            pytest.skip("no /proc here")
    result = gpu_check("--dry-run", out)
    assert result.returncode == 2
    assert result.stderr == (f"gpu_check.sh: cannot write to the output folder {out}: pass a writable folder "
                             "(the OUT_DIR argument or $OUT)\n")
    assert result.stdout == ""  # no stage ran


def test_an_output_folder_holding_other_files_is_refused_and_kept(tmp_path):
    (tmp_path / "notes.md").write_text("mine")
    result = gpu_check("--dry-run", str(tmp_path))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"gpu_check.sh: the output folder {tmp_path} holds 1 entries this script did not write "
                             "(notes.md...): empty it or pass another folder\n")
    assert os.listdir(tmp_path) == ["notes.md"]


def test_an_earlier_checks_files_are_moved_aside_and_named(tmp_path):
    out = tmp_path / "out"
    earlier = ["summary.txt", "run.log", "throughput_cpu_float32_2026-12-01.json"]
    for name in earlier:
        write(out / name, name)
    result = gpu_check("--out-only", str(out))
    assert result.returncode == 0, result.stderr
    moved, printed = result.stdout.splitlines()
    aside = moved.rsplit(" to ", 1)[1]
    assert moved == f"gpu_check.sh: moved the 3 files of an earlier check from {out} to {aside}"
    assert os.path.dirname(aside) == str(tmp_path) and os.path.basename(aside).startswith("out.earlier-")
    assert sorted(os.listdir(aside)) == sorted(earlier) and (tmp_path / aside / "run.log").read_text() == "run.log"
    assert printed == str(out) and os.listdir(out) == []


@pytest.mark.parametrize("through", ["argument", "OUT"])
def test_a_relative_output_folder_is_the_callers(tmp_path, through):
    args, out = (["--out-only", "rel/out"], None) if through == "argument" else (["--out-only"], "rel/out")
    result = gpu_check(*args, cwd=tmp_path, out=out)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{tmp_path / 'rel' / 'out'}\n" and (tmp_path / "rel" / "out").is_dir()
    assert not os.path.exists(os.path.join(REPO_ROOT, "rel"))


def test_the_dry_run_and_the_gpu_run_have_their_own_default_folders():
    results = os.path.join(REPO_ROOT, "benchmarks", "results")
    for name in ("gpu-check-", "gpu-check-dry-run-"):
        today = os.path.join(results, name + time.strftime("%Y-%m-%d"))
        if os.path.isdir(today) and os.listdir(today):
            pytest.skip(f"{today} holds a check's results, which --out-only would move aside")
    folders = {}
    for mode, args in (("gpu", ["--out-only"]), ("dry run", ["--dry-run", "--out-only"])):
        existed = set(os.listdir(results))
        result = gpu_check(*args)
        assert result.returncode == 0, result.stderr
        folders[mode] = result.stdout.splitlines()[-1]
        if os.path.basename(folders[mode]) not in existed:  # created just now, empty: leave the tree as it was
            os.rmdir(folders[mode])
    assert os.path.dirname(folders["gpu"]) == os.path.dirname(folders["dry run"]) == results
    assert os.path.basename(folders["gpu"]).startswith("gpu-check-2")
    assert os.path.basename(folders["dry run"]).startswith("gpu-check-dry-run-2")
