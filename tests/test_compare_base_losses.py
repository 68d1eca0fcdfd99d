"""see-compare --base-losses: plain against SEE of several losses on the same seeds, a folder
and a summary row per loss, resumed, and refused with other flags or the other layout."""
import json

import pytest

from see_cuda.data.glyphs import INSTALL_HINT, installed_faces
from see_cuda.train import compare
from see_cuda.train.config import FlagError

needs_fonts = pytest.mark.skipif(not installed_faces(), reason=f"Noto CJK fonts are not installed ({INSTALL_HINT})")
TINY = ["--glyphs-train-classes", "40", "--glyphs-test-classes", "30", "--batch-size", "40", "--cnn-width", "8",
        "--embedding-size", "32", "--n-expansion", "8", "--cnn-stem-stride", "2", "--epochs", "1"]


def test_see_train_flags_are_not_taken_for_compare_flags():
    options, flags = compare.parse(["--base-loss", "arcface", "--seed", "3", "--out", "unused"])
    assert options.base_losses is None and options.seeds is None
    assert flags == ["--base-loss", "arcface", "--seed", "3"]


def test_base_loss_with_base_losses_is_refused():
    options, flags = compare.parse(["--base-losses", "cosface", "--base-loss", "arcface", "--out", "unused"])
    regime = compare.REGIMES["scratch"]
    with pytest.raises(FlagError, match="--base-loss"):
        compare.build_cells(options, regime, compare.base_config(regime, flags, ()), flags)


def test_each_base_loss_is_a_cell_in_its_own_folder():
    options, flags = compare.parse(["--base-losses", "arcface", "proxy-nca", "arcface", "--dims", "16",
                                    "--out", "out"])
    regime = compare.REGIMES["scratch"]
    cells = compare.build_cells(options, regime, compare.base_config(regime, flags, ()), flags)
    assert [(c.name, c.directory, c.base_loss) for c in cells] == [
        ("arcface/d16", "out/arcface/cells/d16", "arcface"), ("proxy-nca/d16", "out/proxy-nca/cells/d16", "proxy-nca")]
    config = compare.run_config(compare.base_config(regime, flags, ()), cells[1], 0, "see")
    assert config.base_loss == "proxy-nca" and config.out_dir == "out/proxy-nca/cells/d16/runs/see-seed0"


@needs_fonts
def test_base_losses_share_the_seeds_report_a_row_each_resume_and_refuse(tmp_path):
    out = tmp_path / "compare"
    command = ["--regime", "scratch", "--seeds", "2", "--out", str(out), "--base-losses", "normalized-softmax",
               "arcface"] + TINY
    compare.main(command)
    summary = json.loads((out / "summary.json").read_text())
    assert [row["base_loss"] for row in summary["cells"]] == ["normalized-softmax", "arcface"]
    for row in summary["cells"]:
        r1 = row["metrics"]["recall@1"]
        assert row["seeds"] == [0, 1] and len(r1["see_minus_pa"]["differences"]) == 2
        assert r1["see_minus_pa"]["low"] <= r1["see_minus_pa"]["mean"] <= r1["see_minus_pa"]["high"]
    text = (out / "summary.md").read_text()
    assert "| loss | embedding |" in text and "| arcface | 32 |" in text and "SEE − plain" in text
    assert text.startswith("# Glyphs, small CNN from scratch: plain vs SEE per loss") and "PA + SEE" not in text
    for loss in ("normalized-softmax", "arcface"):
        per_loss = json.loads((out / loss / "summary.json").read_text())
        assert per_loss["seeds"] == [0, 1]
        recorded = json.loads((out / loss / "runs" / "see-seed1" / "metrics.json").read_text())["config"]
        assert recorded["base_loss"] == loss and recorded["seed"] == 1
    # The same batches for both losses: the same seed's runs saw the same images in the same order.
    first = {loss: json.loads((out / loss / "runs" / "pa-seed0" / "metrics.json").read_text())["config"]
             for loss in ("normalized-softmax", "arcface")}
    assert {k: v for k, v in first["arcface"].items() if k not in ("base_loss", "out_dir")} == \
        {k: v for k, v in first["normalized-softmax"].items() if k not in ("base_loss", "out_dir")}

    finished = (out / "arcface" / "runs" / "pa-seed0" / "checkpoint.pt").stat().st_mtime_ns
    compare.main(command)
    assert (out / "arcface" / "runs" / "pa-seed0" / "checkpoint.pt").stat().st_mtime_ns == finished
    with pytest.raises(SystemExit, match=r"see-compare: error: .*pa-seed0.*--lr: 0.001 -> 0.5"):
        compare.main(command + ["--lr", "0.5"])
    with pytest.raises(SystemExit, match=r"see-compare: error: .*per loss of --base-losses"):
        compare.main(["--regime", "scratch", "--seeds", "2", "--out", str(out), "--base-loss", "arcface"] + TINY)
    assert (out / "arcface" / "runs" / "pa-seed0" / "checkpoint.pt").stat().st_mtime_ns == finished


@needs_fonts
def test_a_grid_of_losses_reports_each_loss_and_a_follow_up_at_another_lambda_reuses_the_plain_runs(tmp_path):
    import shutil

    out = tmp_path / "grid"
    command = ["--regime", "scratch", "--seeds", "1", "--base-losses", "proxy-anchor", "arcface", "--dims", "16",
               "24"] + TINY
    compare.main(command + ["--out", str(out)])
    for loss in ("proxy-anchor", "arcface"):
        rows = json.loads((out / loss / "summary.json").read_text())["cells"]
        assert [(row["base_loss"], row["embedding_size"]) for row in rows] == [(loss, 16), (loss, 24)]
        assert (out / loss / "summary.md").exists()
    assert len(json.loads((out / "summary.json").read_text())["cells"]) == 4

    # The follow-up of one cell at λ = 0.5: its plain runs are the grid's, copied and read back.
    follow = tmp_path / "follow-up"
    plain = follow / "arcface" / "cells" / "d16" / "runs" / "pa-seed0"
    shutil.copytree(out / "arcface" / "cells" / "d16" / "runs" / "pa-seed0", plain)
    finished = (plain / "checkpoint.pt").stat().st_mtime_ns
    compare.main(["--regime", "scratch", "--seeds", "1", "--base-losses", "arcface", "--dims", "16", "--lam", "0.5",
                  "--out", str(follow)] + TINY)
    assert (plain / "checkpoint.pt").stat().st_mtime_ns == finished
    see = json.loads((follow / "arcface" / "cells" / "d16" / "runs" / "see-seed0" / "metrics.json").read_text())
    assert see["config"]["lam"] == 0.5
