"""`torchrun ... -m see_cuda.train --shard-proxies`: trains, checkpoints each process's proxies,
resumes to the uninterrupted result, and refuses another number of processes."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from see_cuda.data.glyphs import INSTALL_HINT, installed_faces
from see_cuda.train import TrainConfig, checksummed, train
from see_cuda.train.cli import parse_config
from see_cuda.train.config import FlagError
from see_cuda.train.model import build_model
from see_cuda.train.run_record import ConfigMismatchError, differences, recorded_config

needs_fonts = pytest.mark.skipif(not installed_faces(), reason=f"Noto CJK fonts are not installed ({INSTALL_HINT})")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--dataset", "glyphs", "--shard-proxies", "--glyphs-train-classes", "40", "--glyphs-test-classes", "30",
        "--batch-size", "40", "--cnn-width", "8", "--embedding-size", "32", "--n-expansion", "8", "--threads", "1",
        "--no-progress", "--epochs", "2"]


def torchrun(out_dir, *flags, sharded=True):
    # --standalone: a free port of its own, so that runs on one machine do not meet.
    tiny = TINY if sharded else [flag for flag in TINY if flag != "--shard-proxies"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
               "see_cuda.train", "--out-dir", str(out_dir), *tiny, *flags]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def load(path):
    return checksummed.load(str(path), "")


def assert_same(expected, got, where):
    if isinstance(expected, torch.Tensor):
        assert torch.equal(expected, got), where
    elif isinstance(expected, np.ndarray):
        assert np.array_equal(expected, got), where
    elif isinstance(expected, dict):
        assert expected.keys() == got.keys(), where
        for key in expected:
            assert_same(expected[key], got[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert len(expected) == len(got), where
        for index, (a, b) in enumerate(zip(expected, got)):
            assert_same(a, b, f"{where}[{index}]")
    elif not (isinstance(expected, float) and where.endswith("_seconds")):
        assert expected == got, where


def class_vectors(loss_state):
    """A saved shard's C_r x D class vectors, from either layout (PML's W is D x C_r)."""
    return loss_state["W"].t() if "W" in loss_state else loss_state["proxies"]


@needs_fonts
@pytest.mark.parametrize("base_loss", ["proxy-anchor", "arcface"])
def test_sharded_training_resumes_exactly_and_refuses_another_world_size(tmp_path, base_loss):
    whole, split = tmp_path / "whole", tmp_path / "split"
    torchrun(whole, "--base-loss", base_loss)
    torchrun(split, "--base-loss", base_loss, "--stop-after", "1")
    assert sorted(p.name for p in split.glob("proxies-*")) == ["proxies-0-of-2.epoch-1.pt", "proxies-1-of-2.epoch-1.pt"]
    torchrun(split, "--base-loss", base_loss, "--resume")
    # The earlier epoch's files go once checkpoint.pt names the new one.
    assert sorted(p.name for p in split.glob("proxies-*")) == ["proxies-0-of-2.epoch-2.pt", "proxies-1-of-2.epoch-2.pt"]

    expected, got = load(whole / "checkpoint.pt"), load(split / "checkpoint.pt")
    assert got["epochs_done"] == 2 and got["proxy_shards"] == {"world_size": 2}
    assert got["loss"] is None  # each process's file holds its proxies
    for key in ("model", "history", "random", "optimizer"):
        assert_same(expected[key], got[key], key)
    # The optimizer's state: the network's once, here; each process's proxies' in its own file.
    proxy_id = got["optimizer"]["param_groups"][1]["params"][0]
    assert len(got["optimizer"]["state"]) == proxy_id and proxy_id not in got["optimizer"]["state"]
    shards = []
    for rank in range(2):
        name = f"proxies-{rank}-of-2.epoch-2.pt"
        expected_shard, got_shard = load(whole / name), load(split / name)
        assert_same(expected_shard, got_shard, name)
        shards.append(class_vectors(got_shard["loss"]))
        assert list(got_shard["optimizer"]["state"]) == [proxy_id]  # the Adam moments of its proxies only
    assert [s.shape[0] for s in shards] == [20, 20] and not torch.equal(shards[0], shards[1])

    one_process = parse_config(["--out-dir", str(split), *TINY, "--base-loss", base_loss, "--resume"])
    with pytest.raises(ConfigMismatchError, match="sharded over 2 processes.*--nproc_per_node 2"):
        train(one_process)


@needs_fonts
def test_replicated_proxies_train_under_torchrun_and_save_the_plain_network(tmp_path):
    torchrun(tmp_path / "run", "--epochs", "1", sharded=False)
    state = load(tmp_path / "run" / "checkpoint.pt")
    assert state["epochs_done"] == 1 and state["proxy_shards"] is None and state["loss"] is not None
    # The network trained in DistributedDataParallel with its BatchNorm over the whole batch is saved
    # as the plain network: it loads into the one-process model.
    model = build_model("small_cnn", 32, 1, 8)
    model.load_state_dict(state["model"])
    counts = {int(v) for k, v in state["model"].items() if k.endswith("num_batches_tracked")}
    assert len(counts) == 1 and counts.pop() > 0  # every BatchNorm layer counted every step


def test_fp16_with_sharded_proxies_is_refused():
    with pytest.raises(FlagError, match="--shard-proxies"):
        TrainConfig(shard_proxies=True, amp="fp16").check()


def test_runs_recorded_before_the_flag_were_not_sharded():
    record = recorded_config(TrainConfig())
    del record["shard_proxies"]
    assert differences(record, recorded_config(TrainConfig())) == []
    assert differences(record, recorded_config(TrainConfig(shard_proxies=True))) == [
        "--shard-proxies: False -> True"]
