"""`python -m see_cuda.train` and its comparisons: a smoke run, exact resume, resumes and
comparisons that refuse runs made with other flags, the grid, and clear errors for missing backbones."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from see_cuda.data.glyphs import INSTALL_HINT, installed_faces
from see_cuda.train import TrainConfig, checkpoint, train
from see_cuda.train.cli import parse_config
from see_cuda.train.model import BackboneUnavailableError, SmallCNN, build_model
from see_cuda.train.optim import schedule_factor
from see_cuda.train.run_record import ConfigMismatchError

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
    return checkpoint.read(str(out_dir))


@needs_fonts
@pytest.mark.parametrize("loss", ["see", "pa"])
def test_resume_gives_the_uninterrupted_result(tmp_path, loss):
    # The cosine schedule too: its rates are a function of the epoch, so a resume has them.
    whole = tiny_config(tmp_path / "whole", epochs=2, loss=loss, lr_schedule="cosine")
    train(whole)
    split = tiny_config(tmp_path / "split", epochs=2, loss=loss, stop_after=1, lr_schedule="cosine")
    assert len(train(split)) == 1
    split.stop_after, split.resume = None, True
    history = train(split)

    expected, got = final_state(whole.out_dir), final_state(split.out_dir)
    assert got["epochs_done"] == 2 and len(history) == 2
    for name in ("model", "loss"):
        for key, tensor in expected[name].items():
            assert torch.equal(tensor, got[name][key]), f"{name}.{key} differs after resume"
    def timeless(rows):
        return [{k: v for k, v in row.items() if not k.endswith("_seconds")} for row in rows]

    assert timeless(got["history"]) == timeless(expected["history"])
    if loss == "see":
        assert got["history"][1]["expanded_per_batch"] > 0


@needs_fonts
def test_resume_with_more_epochs_extends_a_finished_run_on_its_schedules(tmp_path):
    """--resume --epochs 3 after 2 epochs: the schedules keep their span of 2 and hold their last values,
    exactly as a run trained for 3 epochs with --schedule-epochs 2."""
    first = tiny_config(tmp_path / "extended", epochs=2, lr_schedule="cosine")
    train(first)
    extension = tiny_config(tmp_path / "extended", epochs=3, lr_schedule="cosine", resume=True)
    history = train(extension)
    whole = tiny_config(tmp_path / "whole", epochs=3, schedule_epochs=2, lr_schedule="cosine")
    train(whole)

    expected, got = final_state(whole.out_dir), final_state(extension.out_dir)
    assert [row["epoch"] for row in history] == [1, 2, 3] and got["epochs_done"] == 3
    for name in ("model", "loss"):
        for key, tensor in expected[name].items():
            assert torch.equal(tensor, got[name][key]), f"{name}.{key} differs in the extension"
    assert got["config"]["epochs"] == 3 and got["config"]["schedule_epochs"] == 2
    rates = [group["lr"] for group in got["optimizer"]["param_groups"]]
    factor = schedule_factor("cosine", 1, 2)  # epoch 3 trains with the last epoch's rates
    assert rates == [pytest.approx(first.lr * factor), pytest.approx(first.proxy_lr * factor)]


def test_the_schedules_hold_their_last_epoch_past_their_span():
    config = TrainConfig(epochs=5, schedule_epochs=3)
    assert [config.schedule_epoch(epoch) for epoch in range(5)] == [0, 1, 2, 2, 2]
    assert TrainConfig(epochs=5).schedule_span == 5


def test_cosine_schedule_sets_both_rates_from_the_epoch():
    from see_cuda.train.optim import build_optimizer, schedule_factor, set_epoch_learning_rates

    factors = [schedule_factor("cosine", epoch, 10) for epoch in range(10)]
    assert all(a > b for a, b in zip(factors, factors[1:])) and factors[0] > 0.97 and factors[-1] < 0.03
    assert abs(factors[4] + factors[5] - 1) < 1e-12  # symmetric about the middle
    assert schedule_factor("constant", 7, 10) == 1.0
    config = TrainConfig(lr=1e-3, proxy_lr=5e-2, epochs=10, lr_schedule="cosine")
    optimizer = build_optimizer(torch.nn.Linear(2, 2), torch.nn.Parameter(torch.zeros(3, 2)), 1e-3, 5e-2, 0.0)
    set_epoch_learning_rates(optimizer, config, 9)
    assert [group["lr"] for group in optimizer.param_groups] == [1e-3 * factors[9], 5e-2 * factors[9]]
    with pytest.raises(ValueError, match="--lr-schedule"):
        TrainConfig(lr_schedule="linear").check()


@pytest.mark.parametrize("epochs", [1, 2, 3, 16, 40])
def test_step_schedule_is_a_tenth_over_the_last_third(epochs):
    from see_cuda.train.grid_report import late_gain_start
    from see_cuda.train.optim import first_step_epoch, schedule_factor

    factors = [schedule_factor("step", epoch, epochs) for epoch in range(epochs)]
    low = [epoch for epoch, factor in enumerate(factors) if factor == 0.1]
    assert set(factors) <= {1.0, 0.1} and low == list(range(first_step_epoch(epochs), epochs))
    assert len(low) <= epochs / 3 < len(low) + 1  # the last third, rounded down
    # The grid's late gain (the last quarter of the epochs) lies wholly at the lower rate.
    if epochs >= 16:
        assert first_step_epoch(epochs) <= late_gain_start(epochs)


def test_step_schedule_note_says_the_epochs_whose_rates_fell():
    from see_cuda.train.optim import schedule_note

    # 4 and 5 epochs lower only the last (floor(epochs / 3) = 1); 1 and 2 lower none.
    assert schedule_note("step", [4, 5]) == "both ×0.1 over epochs 4-4 of 4 and 5-5 of 5 (counting from 1)"
    assert schedule_note("step", [6]) == "both ×0.1 over epochs 5-6 of 6 (counting from 1)"
    assert schedule_note("step", [2]) == "both ×0.1 over epochs none of 2 (counting from 1)"


@pytest.mark.parametrize("epochs", [1, 2])
def test_step_schedule_too_short_to_fall_is_refused_by_both_commands(epochs, tmp_path):
    from see_cuda.train import compare

    with pytest.raises(ValueError, match=r"--lr-schedule step .*--epochs 3 or more, got " + str(epochs)):
        TrainConfig(lr_schedule="step", epochs=epochs).check()
    with pytest.raises(SystemExit, match=r"--lr-schedule step .*--epochs 3 or more"):
        compare.main(["--regime", "dims-classes-step", "--out", str(tmp_path / "grid"), "--epochs", str(epochs)])
    assert not (tmp_path / "grid").exists()


def test_grid_report_states_the_schedule():
    from see_cuda.train import compare

    for regime, said in [("dims-classes", "both constant"),
                         ("dims-classes-step", "both ×0.1 over epochs 28-40 of 40 and 12-16 of 16 (counting from 1)")]:
        options, flags = compare.parse(["--regime", regime, "--out", "unused"])
        base = compare.base_config(compare.REGIMES[regime], flags, (1000, 4000))
        note = compare.budget_note(base, compare.build_cells(options, compare.REGIMES[regime], base, flags), 60.0)
        assert f"proxy lr 0.05, {said}; PA" in note


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
    with pytest.raises(ValueError, match="multiple of --m-per-class"):
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

    # The same command again reuses the finished runs; other training flags are refused,
    # naming the run and the flag, before anything is trained.
    finished = (out / "runs" / "pa-seed0" / "checkpoint.pt").stat().st_mtime_ns
    compare.main(["--regime", "scratch", "--seeds", "2", "--out", str(out), "--epochs", "1"] + TINY[:-1]
                 + ["--cnn-stem-stride", "2"])
    assert (out / "runs" / "pa-seed0" / "checkpoint.pt").stat().st_mtime_ns == finished
    with pytest.raises(SystemExit, match=r"see-compare: error: .*pa-seed0.*--lr: 0.001 -> 0.5"):
        compare.main(["--regime", "scratch", "--seeds", "2", "--out", str(out), "--epochs", "1"] + TINY[:-1]
                     + ["--cnn-stem-stride", "2", "--lr", "0.5"])
    assert (out / "runs" / "pa-seed0" / "checkpoint.pt").stat().st_mtime_ns == finished
    assert json.loads((out / "summary.json").read_text())["config"]["lr"] == 0.001


@needs_fonts
def test_resume_with_other_training_flags_is_refused_and_run_only_flags_are_not(tmp_path):
    train(tiny_config(tmp_path / "run", epochs=2, stop_after=1))
    with pytest.raises(ConfigMismatchError, match=r"--loss: 'see' -> 'pa'.*--lr: 0.001 -> 0.5"):
        train(tiny_config(tmp_path / "run", epochs=2, resume=True, lr=0.5, loss="pa"))
    with pytest.raises(ConfigMismatchError, match="--schedule-epochs: 2 -> 3"):
        train(tiny_config(tmp_path / "run", epochs=3, schedule_epochs=3, resume=True))
    # Where it writes, when it stops and how it evaluates in batches change nothing trained.
    history = train(tiny_config(tmp_path / "run", epochs=2, resume=True, eval_batch_size=7, stop_after=None))
    assert [row["epoch"] for row in history] == [1, 2]
    recorded = json.loads((tmp_path / "run" / "metrics.json").read_text())["config"]
    assert recorded["lr"] == 0.001 and recorded["loss"] == "see" and recorded["epochs"] == 2


@needs_fonts
def test_backbone_weights_count_by_content_not_path(tmp_path):
    torch.manual_seed(0)
    torch.save({"backbone": SmallCNN(1, 8).state_dict()}, tmp_path / "a.pt")
    shutil.copy(tmp_path / "a.pt", tmp_path / "moved.pt")
    torch.save({"backbone": SmallCNN(1, 8).state_dict()}, tmp_path / "other.pt")
    train(tiny_config(tmp_path / "run", epochs=2, stop_after=1, backbone_weights=str(tmp_path / "a.pt")))
    moved = tiny_config(tmp_path / "run", epochs=2, resume=True, backbone_weights=str(tmp_path / "moved.pt"))
    assert checkpoint.check_resumable(str(tmp_path / "run"), moved)[0] == 1
    other = tiny_config(tmp_path / "run", epochs=2, resume=True, backbone_weights=str(tmp_path / "other.pt"))
    with pytest.raises(ConfigMismatchError, match=r"--backbone-weights \(file content\)"):
        checkpoint.check_resumable(str(tmp_path / "run"), other)


@needs_fonts
def test_checkpoint_without_a_config_record_is_not_continued(tmp_path):
    train(tiny_config(tmp_path / "run", epochs=2, stop_after=1))
    state = checkpoint.read(str(tmp_path / "run"))
    del state["config"]
    torch.save(state, tmp_path / "run" / checkpoint.FILENAME)
    with pytest.raises(ConfigMismatchError, match="no record"):
        train(tiny_config(tmp_path / "run", epochs=2, resume=True))


@needs_fonts
def test_class_pool_gives_every_class_count_the_same_test_characters():
    from see_cuda.train.data import build_datasets

    small, _, _ = build_datasets(tiny_config("unused", glyphs_class_pool=40, glyphs_train_classes=20))
    whole, test, _ = build_datasets(tiny_config("unused", glyphs_class_pool=40, glyphs_train_classes=40))
    _, small_test, _ = build_datasets(tiny_config("unused", glyphs_class_pool=40, glyphs_train_classes=20))
    assert small_test.queries.characters == test.queries.characters
    assert set(small.characters) < set(whole.characters) and len(small.characters) == 20
    assert sorted(set(small.labels)) == list(range(20)) and len(small) == 20 * 4
    images, labels = small.batch(torch.arange(len(small)))
    plain, _ = small.glyphs.batch(small.indices)  # the same images, unaugmented here and there
    assert labels.tolist() == small.labels and images.shape == plain.shape
    with pytest.raises(ValueError, match="exceeds"):
        tiny_config("unused", glyphs_class_pool=10, glyphs_train_classes=20).check()


@needs_fonts
def test_grid_pretrains_once_writes_every_cell_and_resumes(tmp_path):
    from see_cuda.train import compare

    out = tmp_path / "grid"
    flags = ["--regime", "pretrained", "--out", str(out), "--pretrain-characters", "60", "--pretrain-epochs", "1",
             "--epochs", "2", "--glyphs-test-classes", "30", "--glyphs-image-size", "32", "--batch-size", "40",
             "--cnn-width", "8", "--cnn-stem-stride", "2", "--n-expansion", "8", "--threads", "1"]
    compare.main(flags + ["--dims", "16", "--train-classes", "20", "40", "--seeds", "1"])
    summary = json.loads((out / "summary.json").read_text())
    assert [(c["embedding_size"], c["train_classes"], c["seeds"], c["epochs"]) for c in summary["cells"]] == [
        (16, 20, [0], 2), (16, 40, [0], 2)]
    assert summary["config"]["glyphs_class_pool"] == 40
    pretraining = summary["pretraining"]
    assert pretraining["settings"]["image_size"] == 32 and 0 < pretraining["characters"] <= 60
    run = json.loads((out / "cells" / "d16-c20" / "runs" / "see-seed0" / "metrics.json").read_text())["config"]
    assert run["glyphs_train_classes"] == 20 and run["embedding_size"] == 16
    assert run["backbone_weights_sha256"] is not None
    from see_cuda.train.grid_report import SUMMARY_FILES

    for name in (*SUMMARY_FILES, "compare.log"):
        assert (out / name).stat().st_size > 0
    assert "| 16 | 40 | 1 |" in (out / "summary.md").read_text()

    # A second seed for one cell: the first seed's runs are read back, not retrained.
    kept = (out / "cells" / "d16-c40" / "runs" / "pa-seed0" / "checkpoint.pt").stat().st_mtime_ns
    compare.main(flags + ["--dims", "16", "--train-classes", "40", "--seeds", "2"])
    assert (out / "cells" / "d16-c40" / "runs" / "pa-seed0" / "checkpoint.pt").stat().st_mtime_ns == kept
    cells = json.loads((out / "summary.json").read_text())["cells"]
    assert [(c["cell"], c["seeds"]) for c in cells] == [("d16-c40", [0, 1])]
    with pytest.raises(SystemExit, match="see-compare: error: .*pretrained with other settings"):
        compare.main(flags + ["--dims", "16", "--train-classes", "40", "--pretrain-epochs", "2"])


def test_grid_passes_data_set_and_backbone_flags_to_every_run(tmp_path):
    from data_fixtures import make_cub
    from see_cuda.train import compare

    make_cub(tmp_path / "cub", num_classes=200, per_class=2)
    out = tmp_path / "grid"
    flags = ["--regime", "dims-classes", "--out", str(out), "--seeds", "1", "--dims", "16", "24", "--dataset", "cub",
             "--data-root", str(tmp_path / "cub"), "--image-size", "32", "--epochs", "1", "--batch-size", "40",
             "--cnn-width", "4", "--n-expansion", "8"]
    with pytest.raises(SystemExit, match="--train-classes is a Glyphs axis"):
        compare.main(flags + ["--train-classes", "50"])
    compare.main(flags)
    cells = json.loads((out / "summary.json").read_text())["cells"]
    assert [(c["cell"], c["train_classes"], c["epochs"]) for c in cells] == [("d16", None, 1), ("d24", None, 1)]
    run = json.loads((out / "cells" / "d24" / "runs" / "see-seed0" / "metrics.json").read_text())["config"]
    assert run["dataset"] == "cub" and run["data_root"] == str(tmp_path / "cub") and run["embedding_size"] == 24
    assert run["backbone_weights"] is None and not (out / "pretrain").exists()  # Glyphs pretraining only


def test_optimizer_state_splits_into_network_and_proxies_and_merges_back():
    from see_cuda.train.optim import build_optimizer, merge_state, split_state

    network, proxies = torch.nn.Linear(3, 2), torch.nn.Parameter(torch.randn(4, 2))
    optimizer = build_optimizer(network, proxies, 1e-3, 1e-2, 1e-4)
    (network(torch.randn(5, 3)).sum() + proxies.square().sum()).backward()
    optimizer.step()
    state = optimizer.state_dict()
    network_part, proxies_part = split_state(state)
    assert sorted(network_part["state"]) == [0, 1] and sorted(proxies_part["state"]) == [2]
    restored = build_optimizer(network, proxies, 1.0, 1.0, 0.0)
    restored.load_state_dict(merge_state(network_part, proxies_part))
    assert restored.state_dict()["param_groups"] == state["param_groups"]
    for key, moments in state["state"].items():
        for name, value in moments.items():
            assert torch.equal(restored.state_dict()["state"][key][name], value), (key, name)


def test_a_value_given_twice_is_one_grid_cell():
    from see_cuda.train import compare

    regime = compare.REGIMES["dims-classes"]
    options, flags = compare.parse(["--regime", "dims-classes", "--dims", "8", "8", "16", "--train-classes", "1000",
                                    "1000", "--out", "unused"])
    base = compare.base_config(regime, flags, tuple(options.train_classes))
    assert [cell.name for cell in compare.build_cells(options, regime, base, flags)] == ["d8-c1000", "d16-c1000"]


def test_one_seed_reports_no_spread_and_no_interval():
    from see_cuda.train import grid_report, report

    history = [{"epoch": 1, "recall@1": 0.5, "recall@2": 0.6, "recall@4": 0.7, "map@r": 0.3}]
    summary = report.summarize_runs({"pa": {0: history}, "see": {0: history}})
    text = report.markdown(summary, "t", [])
    row = {"embedding_size": 8, "train_classes": None, "seeds": [0], "metrics": summary["metrics"],
           "pa_late_gain_r1": 0.0, "see_late_gain_r1": 0.0, "pa_seconds_per_run": 1.0, "see_seconds_per_run": 1.0}
    grid_text = grid_report.markdown([row], "t", [])
    for written in (text, grid_text):
        assert "| 50.00 | 50.00 | +0.00 (one seed: no interval) |" in written
        assert "nan" not in written and "± 0.00" not in written


def test_grid_keeps_the_regimes_pool_for_some_of_its_cells():
    from see_cuda.train import compare

    regime = compare.REGIMES["dims-classes"]
    options, flags = compare.parse(["--regime", "dims-classes", "--train-classes", "1000", "--out", "unused"])
    base = compare.base_config(regime, flags, tuple(options.train_classes))
    assert base.glyphs_class_pool == 4000  # the same split, so the same test characters, as the whole grid
    cells = compare.build_cells(options, regime, base, flags)
    assert [(cell.name, cell.epochs) for cell in cells] == [("d32-c1000", 40), ("d64-c1000", 40), ("d256-c1000", 40)]
    with pytest.raises(ValueError, match="exceeds the pool"):
        compare.base_config(regime, flags, (8000,))


@needs_fonts
@pytest.mark.parametrize("base_loss", ["arcface", "proxy-nca"])
def test_each_base_loss_trains_plain_and_with_see(tmp_path, base_loss):
    """--base-loss: the softmax family's modules in the same loop, plain (pa) and with the expansion (see)."""
    for loss in ("pa", "see"):
        history = train(tiny_config(tmp_path / loss, epochs=1, loss=loss, base_loss=base_loss))
        assert len(history) == 1 and history[0]["loss"] > 0 and 0 <= history[0]["recall@1"] <= 1
        assert (history[0]["expanded_per_batch"] > 0) == (loss == "see")
    saved = final_state(tmp_path / "see")["loss"]
    assert list(saved) == (["proxies"] if base_loss == "proxy-nca" else ["W"])


@pytest.mark.parametrize("base_loss, name, shape", [("arcface", "W", (32, 40)), ("proxy-nca", "proxies", (40, 32))])
def test_sharded_softmax_family_holds_its_shard_in_the_modules_layout(base_loss, name, shape):
    """--shard-proxies with a softmax loss: the sharded module, one process holding every class here."""
    from see_cuda.sharded import ShardedSoftmaxFamilyLoss
    from see_cuda.train.loss import build_loss

    config = parse_config(["--base-loss", base_loss, "--shard-proxies"] + TINY)
    config.check()
    loss_fn = build_loss(config, 40)
    assert isinstance(loss_fn, ShardedSoftmaxFamilyLoss) and loss_fn.ddp_gradients
    assert [(n, tuple(p.shape)) for n, p in loss_fn.named_parameters()] == [(name, shape)]
    assert loss_fn.class_vectors().shape == (40, 32)


@needs_fonts
def test_a_plain_run_trains_the_same_whatever_the_expansion_flags_so_it_serves_every_lambda(tmp_path):
    expansion = dict(lam=0.5, n_expansion=4, rho_min=0.1, rho_max=0.9)
    first = train(tiny_config(tmp_path / "a", epochs=2, loss="pa"))
    second = train(tiny_config(tmp_path / "b", epochs=2, loss="pa", **expansion))
    assert [row["loss"] for row in first] == [row["loss"] for row in second]
    assert torch.equal(final_state(tmp_path / "a")["model"]["embedding.weight"],
                       final_state(tmp_path / "b")["model"]["embedding.weight"])
    # So a plain run recorded at one λ is reused at another; a SEE run is not.
    assert checkpoint.check_resumable(str(tmp_path / "a"), tiny_config(tmp_path / "a", epochs=2, loss="pa",
                                                                        resume=True, **expansion))[0] == 2
    train(tiny_config(tmp_path / "see", epochs=1, loss="see"))
    with pytest.raises(ConfigMismatchError, match="--lam: 0.2 -> 0.5"):
        checkpoint.check_resumable(str(tmp_path / "see"), tiny_config(tmp_path / "see", epochs=1, resume=True,
                                                                        **expansion))
