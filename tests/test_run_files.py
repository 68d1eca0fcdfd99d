"""What training leaves on disk when writing fails or files are damaged: whole files or the
previous ones, no temporary files, metrics that agree with the checkpoint, and errors that
name the damaged file and what to do.

A full disk is simulated by a writer that writes part of its bytes and raises
OSError(ENOSPC); a damaged file by truncation. The runs train a tiny CNN on a tiny CUB copy.
"""
import errno
import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch

from data_fixtures import make_cub
from see_cuda.data import files
from see_cuda.data.files import DamagedFileError, remove_stale_temporaries, write_atomically
from see_cuda.data.glyphs.cache import cached_array, cached_json
from see_cuda.train import checkpoint, compare, run, train
from see_cuda.train.cli import parse_config
from see_cuda.train.model import SmallCNN, build_model


def truncate(path, keep=0.5):
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        handle.truncate(int(size * keep))


def dead_pid() -> int:
    """The id of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def temporaries(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def disk_full_after(written_bytes: int):
    """A writer that writes `written_bytes` bytes and then fails as a full disk does."""
    def write(handle):
        handle.write(b"x" * written_bytes)
        raise OSError(errno.ENOSPC, "No space left on device")

    return write


# ---------------------------------------------------------------- atomic writes


def test_a_full_disk_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "state.bin"
    path.write_bytes(b"old")
    with pytest.raises(OSError, match=r"could not write .*state.bin \(No space left on device\)") as failure:
        write_atomically(str(path), disk_full_after(100))
    assert failure.value.errno == errno.ENOSPC
    assert path.read_bytes() == b"old" and temporaries(tmp_path) == []


def test_an_interrupt_while_writing_leaves_no_temporary(tmp_path):
    def interrupted(handle):
        handle.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(str(tmp_path / "state.bin"), interrupted)
    assert os.listdir(tmp_path) == []


def test_the_file_is_synced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor):
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(descriptor).st_mode) else "fsync file")
        real_fsync(descriptor)

    def replace(source, target):
        events.append("rename")
        real_replace(source, target)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "replace", replace)
    write_atomically(str(tmp_path / "state.bin"), lambda handle: handle.write(b"new"))
    assert events == ["fsync file", "rename", "fsync folder"]
    assert (tmp_path / "state.bin").read_bytes() == b"new"


def test_stale_temporaries_of_gone_processes_are_removed(tmp_path):
    gone, alive = dead_pid(), os.getppid()
    for name in (f"checkpoint.pt.{gone}.tmp", f"metrics.json.{os.getpid()}.tmp", f"checkpoint.pt.{alive}.tmp",
                 "notes.tmp", "checkpoint.pt"):
        (tmp_path / name).write_text("x")
    removed = remove_stale_temporaries(str(tmp_path))
    assert sorted(os.path.basename(path) for path in removed) == sorted(
        [f"checkpoint.pt.{gone}.tmp", f"metrics.json.{os.getpid()}.tmp"])
    # A live process may still be writing its file; names not of that form are not ours.
    assert sorted(os.listdir(tmp_path)) == sorted(["checkpoint.pt", f"checkpoint.pt.{alive}.tmp", "notes.tmp"])


# ---------------------------------------------------------------- training runs


@pytest.fixture(scope="module")
def cub_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cub")
    make_cub(root, num_classes=200, per_class=2)
    return str(root)


def tiny_run(cub_root, out_dir, **changes):
    config = parse_config(["--dataset", "cub", "--data-root", cub_root, "--image-size", "16", "--batch-size", "8",
                           "--cnn-width", "4", "--embedding-size", "16", "--n-expansion", "4", "--epochs", "2",
                           "--batches-per-epoch", "2", "--threads", "1", "--no-progress", "--out-dir", str(out_dir)])
    for name, value in changes.items():
        setattr(config, name, value)
    return config


def recorded_epochs(out_dir):
    return [row["epoch"] for row in json.loads((out_dir / "metrics.json").read_text())["history"]]


def test_a_full_disk_at_a_checkpoint_keeps_the_last_one_and_resume_finishes(cub_root, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_save, calls = torch.save, []

    def save_until_the_disk_fills(state, handle, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second epoch's checkpoint
            handle.write(b"x" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(state, handle, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_the_disk_fills)
    with pytest.raises(OSError, match=r"checkpoint.pt \(No space left on device\).*--resume") as failure:
        train(tiny_run(cub_root, out))
    assert failure.value.errno == errno.ENOSPC
    monkeypatch.setattr(torch, "save", real_save)
    assert temporaries(out) == []
    assert checkpoint.read(str(out))["epochs_done"] == 1
    assert recorded_epochs(out) == [1]  # metrics follow the checkpoint, never ahead of it

    history = train(tiny_run(cub_root, out, resume=True))
    assert [row["epoch"] for row in history] == [1, 2] and recorded_epochs(out) == [1, 2]
    assert checkpoint.read(str(out))["epochs_done"] == 2


def test_a_killed_run_leaves_a_temporary_that_the_next_start_removes(cub_root, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    stale = out / f"checkpoint.pt.{dead_pid()}.tmp"
    stale.write_bytes(b"x" * 4096)  # what a process killed while saving leaves
    train(tiny_run(cub_root, out, epochs=1))
    assert not stale.exists() and temporaries(out) == []


def test_resume_rewrites_metrics_that_lag_the_checkpoint(cub_root, tmp_path, monkeypatch):
    # Interrupted between the last checkpoint and its metrics: a resume that has nothing
    # left to train still leaves metrics that list every epoch the checkpoint holds.
    out = tmp_path / "run"
    real_write, calls = run.write_metrics, []

    def interrupted_at_the_last_epoch(out_dir, record, history):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_write(out_dir, record, history)

    monkeypatch.setattr(run, "write_metrics", interrupted_at_the_last_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_run(cub_root, out))
    monkeypatch.setattr(run, "write_metrics", real_write)
    assert checkpoint.read(str(out))["epochs_done"] == 2 and recorded_epochs(out) == [1]
    history = train(tiny_run(cub_root, out, resume=True))
    assert [row["epoch"] for row in history] == [1, 2] and recorded_epochs(out) == [1, 2]


def test_a_damaged_checkpoint_is_named_with_what_to_do(cub_root, tmp_path):
    out = tmp_path / "run"
    train(tiny_run(cub_root, out, epochs=2, stop_after=1))
    truncate(out / "checkpoint.pt")
    with pytest.raises(DamagedFileError, match=r"run/checkpoint.pt is damaged.*delete it"):
        train(tiny_run(cub_root, out, resume=True))
    with pytest.raises(DamagedFileError, match="checkpoint.pt is damaged"):
        checkpoint.check_resumable(str(out), tiny_run(cub_root, out, resume=True))


def test_a_checkpoint_without_its_parts_is_named(tmp_path):
    torch.save({"epochs_done": 1}, tmp_path / checkpoint.FILENAME)
    with pytest.raises(DamagedFileError, match=r"checkpoint.pt is damaged .*no model, loss, optimizer"):
        checkpoint.read(str(tmp_path))


def test_damaged_backbone_weights_are_named(tmp_path):
    weights = tmp_path / "backbone.pt"
    torch.save({"backbone": SmallCNN(1, 4).state_dict()}, weights)
    truncate(weights)
    with pytest.raises(DamagedFileError, match=r"backbone.pt is damaged.*--backbone-weights"):
        build_model("small_cnn", 8, 1, 4, weights=str(weights))


@pytest.mark.parametrize("content", ['{"wall_sec', '{"seconds": 3}', '{"wall_seconds": "3"}'])
def test_a_damaged_comparison_record_is_named_with_its_own_remedy(tmp_path, content):
    (tmp_path / "wall_seconds.json").write_text(content)
    # Not the pretraining summary's "delete it": that would drop the wall time accumulated so far.
    remedy = r"wall_seconds.json is damaged .*write \{\"wall_seconds\": S\}"
    with pytest.raises(DamagedFileError, match=remedy) as refused:
        compare.accumulated_wall_seconds(str(tmp_path), 1.0)
    assert "backbone.pt" not in str(refused.value)
    (tmp_path / "wall_seconds.json").write_text('{"wall_seconds": 3}')  # the remedy followed
    assert compare.accumulated_wall_seconds(str(tmp_path), 1.0) == 4.0


# ---------------------------------------------------------------- the Glyphs cache


def test_a_truncated_cached_array_is_named_with_what_to_do(tmp_path):
    path = str(tmp_path / "renderings-x.npy")
    array = np.arange(2 * 3 * 8 * 8, dtype=np.uint8).reshape(2, 3, 8, 8)
    assert np.array_equal(cached_array(path, lambda: array, array.shape, np.uint8), array)
    truncate(path)
    with pytest.raises(DamagedFileError, match=r"renderings-x.npy is damaged.*delete it"):
        cached_array(path, lambda: array, array.shape, np.uint8)


def test_a_cached_array_of_another_shape_is_named(tmp_path):
    path = str(tmp_path / "renderings-x.npy")
    cached_array(path, lambda: np.zeros((2, 3), np.uint8))
    with pytest.raises(DamagedFileError, match=r"holds uint8 \(2, 3\), expected uint8 \(2, 4\)"):
        cached_array(path, lambda: np.zeros((2, 4), np.uint8), (2, 4), np.uint8)


def test_a_damaged_cached_json_is_named(tmp_path):
    path = str(tmp_path / "characters-x.json")
    assert cached_json(path, lambda: {"train": "ab", "test": "c"}) == {"train": "ab", "test": "c"}
    truncate(path)
    with pytest.raises(DamagedFileError, match=r"characters-x.json is damaged.*delete it"):
        cached_json(path, lambda: None)


def test_the_cache_writer_clears_stale_temporaries(tmp_path):
    stale = tmp_path / f"renderings-y.npy.{dead_pid()}.tmp"
    stale.write_bytes(b"x")
    cached_array(str(tmp_path / "renderings-y.npy"), lambda: np.zeros(3, np.uint8))
    assert not stale.exists()
