"""Bad flags of `python -m see_cuda.train` and of its comparisons end the command before any
training step, with a message that names the flag.

The training step (`train_one_epoch`) and the pretraining are replaced by functions that
fail the test if reached; each good command is shown to reach them, so that a bad one
stopping short is the check's doing. The data set is a tiny CUB copy (no fonts needed).
"""
import subprocess
import sys

import pytest
import torch

import see_cuda
from data_fixtures import make_cub
from see_cuda.data.files import DamagedFileError
from see_cuda.data.glyphs.fonts import FontsMissingError
from see_cuda.train import cli, compare, run
from see_cuda.train.config import FlagError
from see_cuda.train.model import BackboneUnavailableError
from see_cuda.train.run_record import ConfigMismatchError

# The CUB copy: 100 training and 100 test classes, 2 images each (a test query finds 199 items).
CUB_CLASSES, PER_CLASS = 200, 2


class TrainingStepReached(Exception):
    pass


@pytest.fixture(scope="module")
def cub_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cub")
    make_cub(root, num_classes=CUB_CLASSES, per_class=PER_CLASS)
    return str(root)


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise TrainingStepReached

    monkeypatch.setattr(run, "train_one_epoch", refuse)
    monkeypatch.setattr(compare, "pretrain_backbone", refuse)


def train_flags(cub_root, out):
    return ["--dataset", "cub", "--data-root", cub_root, "--image-size", "16", "--batch-size", "8",
            "--cnn-width", "4", "--embedding-size", "32", "--n-expansion", "8", "--epochs", "1", "--threads", "1",
            "--no-progress", "--out-dir", str(out)]


def blocked_path(tmp_path):
    """A folder that cannot be created: a file stands where its parent should be."""
    (tmp_path / "a_file").write_text("")
    return str(tmp_path / "a_file" / "run")


def failure_text(call, capsys) -> str:
    """The message a command ends with: SystemExit's own, or argparse's on stderr."""
    with pytest.raises(SystemExit) as stopped:
        call()
    assert stopped.value.code != 0
    return f"{stopped.value.code} {capsys.readouterr().err}"


TRAIN_CASES = [
    (["--lr", "-0.1"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "abc"], "--lr"),
    (["--proxy-lr", "0"], "--proxy-lr"),
    (["--weight-decay", "-1"], "--weight-decay"),
    (["--ks", "1000"], "--ks"),
    (["--ks", "0"], "--ks"),
    (["--ks", "1", "-2"], "--ks"),
    (["--eval-batch-size", "0"], "--eval-batch-size"),
    (["--threads", "0"], "--threads"),
    (["--workers", "-1"], "--workers"),
    (["--epochs", "0"], "--epochs"),
    (["--stop-after", "0"], "--stop-after"),
    (["--batches-per-epoch", "0"], "--batches-per-epoch"),
    (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "7"], "--m-per-class"),
    (["--batch-size", "400"], "--batch-size"),  # 200 classes a batch; the training split has 100
    (["--m-per-class", "0"], "--m-per-class"),
    (["--image-size", "0"], "--image-size"),
    (["--cnn-width", "0"], "--cnn-width"),
    (["--cnn-stem-stride", "0"], "--cnn-stem-stride"),
    (["--embedding-size", "4"], "--embedding-size"),
    (["--n-expansion", "0"], "--n-expansion"),
    (["--alpha", "0"], "--alpha"),
    (["--alpha", "1e38"], "--alpha"),  # beyond max_alpha in float32 (7.7e37 at margin 0.1)
    (["--margin", "inf"], "--margin"),
    (["--lam", "-0.2"], "--lam"),
    (["--rho-max", "1.5"], "--rho-max"),
    (["--rho-min", "0.5", "--rho-max", "0.1"], "--rho-min"),
    (["--seed", "-1"], "--seed"),
    (["--seed", str(2**32)], "--seed"),
    (["--device", "tpu"], "--device"),
    (["--amp", "bf16"], "--amp"),
    (["--data-root", ""], "--data-root"),
    (["--glyphs-train-classes", "0"], "--glyphs-train-classes"),
    (["--glyphs-train-faces", "Sans-Thin-JP"], "--glyphs-train-faces"),  # a test face
    (["--glyphs-train-faces", "Sans-Regular-JP,Sans-Regular-JP"], "--glyphs-train-faces"),
    (["--glyphs-train-faces", "Sans Regular"], "--glyphs-train-faces"),
    (["--glyphs-train-faces", ""], "--glyphs-train-faces"),
    (["--loss", "arcface"], "--loss"),
]
if not torch.cuda.is_available():
    TRAIN_CASES.append((["--device", "cuda"], "--device"))


@pytest.mark.parametrize("bad,flag", TRAIN_CASES, ids=[" ".join(bad) for bad, _ in TRAIN_CASES])
def test_train_refuses_a_bad_flag_before_training(cub_root, tmp_path, no_training, capsys, bad, flag):
    out = tmp_path / "run"
    message = failure_text(lambda: cli.main(train_flags(cub_root, out) + bad), capsys)
    assert flag in message
    assert not (out / "checkpoint.pt").exists() and not (out / "metrics.json").exists()


def test_train_refuses_an_unwritable_output_folder_before_training(cub_root, tmp_path, no_training, capsys):
    flags = train_flags(cub_root, tmp_path / "unused") + ["--out-dir", blocked_path(tmp_path)]
    assert "--out-dir" in failure_text(lambda: cli.main(flags), capsys)


def test_train_with_good_flags_reaches_the_training_step(cub_root, tmp_path, no_training):
    # The control of the matrix: the same command without a bad flag gets to train.
    with pytest.raises(TrainingStepReached):
        cli.main(train_flags(cub_root, tmp_path / "run") + ["--ks", "1", "199"])


def test_the_command_line_prints_the_flag_and_exits_with_an_error(cub_root, tmp_path):
    command = [sys.executable, "-m", "see_cuda.train", *train_flags(cub_root, tmp_path / "run"), "--lr", "-1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "error: --lr must be > 0.0, got -1.0" in result.stderr and "Traceback" not in result.stderr


def compare_flags(cub_root, out):
    return ["--regime", "scratch", "--seeds", "1", "--out", str(out), "--dataset", "cub", "--data-root", cub_root,
            "--image-size", "16", "--batch-size", "8", "--cnn-width", "4", "--embedding-size", "32",
            "--n-expansion", "8", "--epochs", "1"]


COMPARE_CASES = [
    (["--ks", "1", "2"], "--ks"),  # the reports tabulate R@4
    (["--ks", "1", "2", "4", "1000"], "--ks"),
    (["--seeds", "0"], "--seeds"),
    (["--first-seed", "-1"], "--first-seed"),
    (["--dims", "0"], "--dims"),
    (["--dims", "32", "4"], "--embedding-size"),  # SEE needs D >= n + 1: the d4 cell
    (["--train-classes", "50"], "--train-classes"),  # a Glyphs axis
    (["--pretrain-epochs", "0"], "--pretrain-epochs"),
    (["--pretrain-characters", "0"], "--pretrain-characters"),
    (["--lr", "-1"], "--lr"),
    (["--threads", "0"], "--threads"),
    (["--eval-batch-size", "0"], "--eval-batch-size"),
    (["--batch-size", "400"], "--batch-size"),
    (["--no-such-flag"], "--no-such-flag"),
]


@pytest.mark.parametrize("bad,flag", COMPARE_CASES, ids=[" ".join(bad) for bad, _ in COMPARE_CASES])
def test_compare_refuses_a_bad_flag_before_training(cub_root, tmp_path, no_training, capsys, bad, flag):
    out = tmp_path / "compare"
    message = failure_text(lambda: compare.main(compare_flags(cub_root, out) + bad), capsys)
    assert flag in message
    assert not list(tmp_path.rglob("checkpoint.pt")) and not list(tmp_path.rglob("metrics.json"))


GLYPHS_COMPARE_CASES = [
    (["--train-classes", "8000"], "--train-classes"),  # beyond the regime's pool of 4,000
    (["--train-classes", "500"], "--train-classes"),  # the regime has no epochs for 500 classes
    (["--ks", "1", "2", "4", "100000"], "--ks"),  # beyond the Glyphs test set: known without rendering
]


@pytest.mark.parametrize("bad,flag", GLYPHS_COMPARE_CASES, ids=[" ".join(bad) for bad, _ in GLYPHS_COMPARE_CASES])
def test_glyphs_grid_refuses_a_bad_flag_before_pretraining(tmp_path, no_training, capsys, bad, flag):
    flags = ["--regime", "dims-classes", "--seeds", "1", "--out", str(tmp_path / "grid")] + bad
    assert flag in failure_text(lambda: compare.main(flags), capsys)
    assert not (tmp_path / "grid" / "pretrain").exists()


def test_the_family_regime_runs_unchanged_on_an_image_data_set(cub_root, tmp_path, no_training):
    # Its Glyphs flags (faces, pool, pixels) do not reach CUB; its losses and embedding sizes do.
    out = tmp_path / "family"
    flags = compare_flags(cub_root, out)
    flags[flags.index("scratch")] = "family"
    flags[flags.index("--epochs") + 1] = "3"  # its step schedule needs 3
    with pytest.raises(TrainingStepReached):
        compare.main(flags)
    assert (out / "proxy-anchor" / "cells" / "d32" / "runs" / "pa-seed0").is_dir()
    assert not (out / "pretrain").exists()


def test_compare_refuses_an_unwritable_output_folder_before_training(cub_root, tmp_path, no_training, capsys):
    flags = compare_flags(cub_root, tmp_path / "unused") + ["--out", blocked_path(tmp_path)]
    assert "--out" in failure_text(lambda: compare.main(flags), capsys)


def test_compare_with_good_flags_reaches_the_training_step(cub_root, tmp_path, no_training):
    with pytest.raises(TrainingStepReached):
        compare.main(compare_flags(cub_root, tmp_path / "compare"))


# ---------------------------------------------------------------- help, one-line failures, the output folder
@pytest.mark.parametrize("build_parser", [cli.build_parser, compare.build_parser], ids=["see-train", "see-compare"])
def test_help_gives_every_flag_a_line_and_its_default(build_parser):
    parser = build_parser()
    text = " ".join(parser.format_help().split())
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.help, f"{action.option_strings} has no help line"
        if action.dest != "debug":
            assert f"{action.help} (default: " in " ".join(text.split()), action.option_strings


def test_a_bad_flag_is_one_line(capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--epochs", "many"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "see-train: error: argument --epochs: invalid int value: 'many'" in err


EXPECTED_FAILURES = [
    FlagError("--lr must be > 0"),
    ConfigMismatchError("the run in x was trained with other values"),
    BackboneUnavailableError("backbone resnet50 needs torchvision"),
    FontsMissingError("no Noto CJK fonts:\n install fonts-noto-cjk"),
    DamagedFileError("x/checkpoint.pt is damaged"),
    FileNotFoundError(2, "No such file or directory", "/data/CUB/images.txt"),
]


@pytest.mark.parametrize("error", EXPECTED_FAILURES, ids=lambda error: type(error).__name__)
def test_an_expected_failure_is_one_line_and_debug_shows_the_traceback(monkeypatch, capsys, error):
    def fail(config):
        raise error

    monkeypatch.setattr(run, "train", fail)
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--no-progress"])
    message = str(stopped.value.code)
    assert message.startswith("see-train: error: ") and "\n" not in message
    assert " ".join(str(error).split()) in message and "--debug" in message
    with pytest.raises(type(error)):
        cli.main(["--no-progress", "--debug"])


def test_an_unexpected_failure_keeps_its_traceback(monkeypatch):
    def fail(config):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(run, "train", fail)
    with pytest.raises(ZeroDivisionError):
        cli.main(["--no-progress"])


def test_a_folder_holding_a_run_is_refused_without_resume(cub_root, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    command = [sys.executable, "-m", "see_cuda.train", *train_flags(cub_root, out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"--out-dir {out} already holds a run (metrics.json); pass --resume" in result.stderr
    assert (out / "metrics.json").read_text() == "{}"


def test_the_run_starts_with_a_line_naming_the_kernels_the_data_and_the_folder(cub_root, tmp_path, no_training,
                                                                               capsys):
    out = tmp_path / "run"
    with pytest.raises(TrainingStepReached):
        cli.main([flag for flag in train_flags(cub_root, out) if flag != "--no-progress"] + ["--ks", "1", "2"])
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("see-train: "))
    kernels = "the fused cpu kernels" if see_cuda.backends()["cpu"] else "the PyTorch reference path"
    assert f"see loss on cpu by {kernels}" in line
    assert "data: cub (200 training items of 100 classes, random resized crops and flips by " in line
    assert f"checkpoint and metrics in {out}" in line
