"""`python -m see_cuda.train`: a smoke run, exact resume, and clear errors for missing backbones."""
import json
import os
import subprocess
import sys

import pytest
import torch

from see_cuda.data.glyphs import INSTALL_HINT, installed_faces
from see_cuda.train import TrainConfig, train
from see_cuda.train.cli import parse_config
from see_cuda.train.model import BackboneUnavailableError, build_model

needs_fonts = pytest.mark.skipif(not installed_faces(), reason=f"Noto CJK fonts are not installed ({INSTALL_HINT})")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--glyphs-train-classes", "40", "--glyphs-test-classes", "30", "--batch-size", "40", "--cnn-width", "8",
        "--embedding-size", "32", "--n-expansion", "8", "--threads", "1", "--no-progress"]


def tiny_config(out_dir, **changes):
    config = parse_config(["--out-dir", str(out_dir)] + TINY)
    for name, value in changes.items():
        setattr(config, name, value)
    return config


@needs_fonts
def test_cli_smoke_run_writes_metrics(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "see_cuda.train", "--out-dir", str(out), "--epochs", "1"] + TINY
    subprocess.run(command, cwd=REPO, check=True, capture_output=True, timeout=120)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["loss"] == "see" and len(metrics["history"]) == 1
    row = metrics["history"][0]
    assert 0 <= row["recall@1"] <= 1 and 0 <= row["map@r"] <= 1 and row["loss"] > 0
    assert (out / "metrics.csv").read_text().startswith("epoch,loss")
    assert (out / "checkpoint.pt").exists() and not list(out.glob("*.tmp"))


def final_state(out_dir):
    return torch.load(os.path.join(out_dir, "checkpoint.pt"), weights_only=False)


@needs_fonts
@pytest.mark.parametrize("loss", ["see", "pa"])
def test_resume_gives_the_uninterrupted_result(tmp_path, loss):
    whole = tiny_config(tmp_path / "whole", epochs=2, loss=loss)
    train(whole)
    split = tiny_config(tmp_path / "split", epochs=2, loss=loss, stop_after=1)
    assert len(train(split)) == 1
    split.stop_after, split.resume = None, True
    history = train(split)

    expected, got = final_state(whole.out_dir), final_state(split.out_dir)
    assert got["epochs_done"] == 2 and len(history) == 2
    for name in ("model", "loss"):
        for key, tensor in expected[name].items():
            assert torch.equal(tensor, got[name][key]), f"{name}.{key} differs after resume"
    timeless = lambda rows: [{k: v for k, v in row.items() if k != "train_seconds"} for row in rows]
    assert timeless(got["history"]) == timeless(expected["history"])
    if loss == "see":
        assert got["history"][1]["expanded_per_batch"] > 0


def test_missing_backbone_libraries_and_weights_are_named():
    with pytest.raises(BackboneUnavailableError, match="torchvision|weights"):
        build_model("resnet50", 64, 3)
    with pytest.raises(BackboneUnavailableError, match="timm|weights"):
        build_model("vit_small", 64, 3)
    with pytest.raises(BackboneUnavailableError, match="does not exist"):
        build_model("small_cnn", 64, 1, weights="/nonexistent/weights.pt")


def test_config_errors_name_the_option():
    with pytest.raises(ValueError, match="data-root"):
        TrainConfig(dataset="cub").check()
    with pytest.raises(ValueError, match="GPU"):
        TrainConfig(amp="fp16").check()
    with pytest.raises(ValueError, match="multiple of m_per_class"):
        TrainConfig(batch_size=41).check()


def test_paired_interval_uses_the_t_quantile():
    from see_cuda.train.paired_stats import _t_cdf, paired_difference

    assert abs(_t_cdf(4.302652729911275, 2) - 0.975) < 1e-6  # t(0.975, 2 dof), the fallback without scipy
    diff = paired_difference([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert diff["mean"] == 2.0
    assert abs(diff["high"] - (2.0 + 4.302652729911275 / 3**0.5)) < 1e-6


@needs_fonts
def test_comparison_writes_table_json_and_plot(tmp_path):
    from see_cuda.train import compare

    out = tmp_path / "compare"
    compare.main(["--regime", "scratch", "--seeds", "2", "--out", str(out), "--epochs", "1"] + TINY[:-1]
                 + ["--cnn-stem-stride", "2"])
    summary = json.loads((out / "summary.json").read_text())
    r1 = summary["metrics"]["recall@1"]
    assert summary["seeds"] == [0, 1] and len(r1["see_minus_pa"]["differences"]) == 2
    assert r1["see_minus_pa"]["low"] <= r1["see_minus_pa"]["mean"] <= r1["see_minus_pa"]["high"]
    assert "SEE − PA" in (out / "summary.md").read_text() and (out / "recall_at_1.png").stat().st_size > 0
