"""Checkpoints and proxies files carry a SHA-256 of their content: a changed byte is refused,
naming the file and what to do; files written without one still load, with a one-line notice."""
import pytest
import torch

import see_cuda
from see_cuda.data.files import DamagedFileError
from see_cuda.train import checkpoint, proxy_shards
from see_cuda.train.optim import build_optimizer

STATE = {key: None for key in checkpoint.REQUIRED_KEYS} | {"epochs_done": 1, "model": {"w": torch.arange(64.0)}}


def flip_a_bit_in_the_middle(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def write_checkpoint(out_dir):
    checkpoint.write_state(str(out_dir), STATE)
    return out_dir / checkpoint.FILENAME


def test_a_checkpoint_reads_back_as_written(tmp_path, capsys):
    write_checkpoint(tmp_path)
    assert torch.equal(checkpoint.read(str(tmp_path))["model"]["w"], STATE["model"]["w"])
    assert capsys.readouterr().err == ""


def test_a_changed_byte_in_a_checkpoint_is_refused_naming_it(tmp_path):
    path = write_checkpoint(tmp_path)
    flip_a_bit_in_the_middle(path)  # the tensor's bytes: torch.load alone reads it without complaint
    with pytest.raises(DamagedFileError, match=rf"{path} is damaged .*checksum.*delete it"):
        checkpoint.read(str(tmp_path))


def test_a_checkpoint_written_before_checksums_loads_with_one_line_notice(tmp_path, capsys):
    torch.save(STATE, tmp_path / checkpoint.FILENAME)
    assert torch.equal(checkpoint.read(str(tmp_path))["model"]["w"], STATE["model"]["w"])
    notice = capsys.readouterr().err
    assert notice.count("\n") == 1 and "checkpoint.pt" in notice and "without a checksum" in notice


def proxies_state():
    loss_fn = see_cuda.SEEProxyAnchorLoss(5, 8, n_expansion=4)
    return loss_fn, build_optimizer(torch.nn.Linear(2, 2), loss_fn.proxies, 1e-3, 1e-2, 0.0)


def test_a_changed_byte_in_a_proxies_file_is_refused_naming_it(tmp_path):
    loss_fn, optimizer = proxies_state()
    path = proxy_shards.save(str(tmp_path), 1, 0, 2, loss_fn, optimizer)
    proxy_shards.load(str(tmp_path), 1, 0, 2, *proxies_state())
    flip_a_bit_in_the_middle(tmp_path / path.rsplit("/", 1)[-1])
    with pytest.raises(DamagedFileError, match=r"proxies-0-of-2.epoch-1.pt is damaged .*checksum.*delete the run"):
        proxy_shards.load(str(tmp_path), 1, 0, 2, *proxies_state())


def test_a_proxies_file_written_before_checksums_loads_with_one_line_notice(tmp_path, capsys):
    loss_fn, optimizer = proxies_state()
    torch.save({"epochs_done": 1, "rank": 0, "world_size": 2, "loss": loss_fn.state_dict(),
                "optimizer": optimizer.state_dict()}, proxy_shards.path_of(str(tmp_path), 0, 2, 1))
    proxy_shards.load(str(tmp_path), 1, 0, 2, *proxies_state())  # read twice, noticed once
    restored, optimizer = proxies_state()
    proxy_shards.load(str(tmp_path), 1, 0, 2, restored, optimizer)
    assert torch.equal(restored.proxies, loss_fn.proxies)
    notice = capsys.readouterr().err
    assert notice.count("\n") == 1 and "proxies-0-of-2.epoch-1.pt" in notice
