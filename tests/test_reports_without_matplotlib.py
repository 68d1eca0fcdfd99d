"""Without matplotlib the comparison's reports are written without their plots, and that is said
once (see-compare says it before any training), instead of failing after all the training."""
from see_cuda.train import plots
from see_cuda.train.report import write_report


def rows(recall):
    return [{"epoch": 1, "recall@1": recall, "recall@2": recall, "recall@4": recall, "map@r": recall / 2}]


def test_reports_leave_out_the_plots_and_say_so_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(plots, "matplotlib_installed", lambda: False)
    monkeypatch.setattr(plots, "_SKIPPED_SAID", [])
    histories = {"pa": {0: rows(0.5), 1: rows(0.6)}, "see": {0: rows(0.55), 1: rows(0.6)}}
    for _ in range(2):
        summary = write_report(str(tmp_path), histories, "a title", [], {})
    assert summary["seeds"] == [0, 1]
    assert (tmp_path / "summary.md").exists() and (tmp_path / "summary.json").exists()
    assert not (tmp_path / "recall_at_1.png").exists()
    said = capsys.readouterr().out
    assert said.count("matplotlib is not installed") == 1 and "see_cuda[train]" in said
