"""The paper-style report: our metrics.csv beside the original's Training_logs.txt."""

import os
import subprocess
import sys

import pytest

from ader_tf.continual.artifacts import write_metrics_csv
from ader_tf.report import find_runs, read_training_log, table
from tests.conftest import REPO_ROOT

LOG = """dataset,DIGINETICA
Period 1:
epoch:1, valid (MRR@20: 0.0348, RECALL@20: 0.0690, MRR@10: 0.0339, RECALL@10: 0.0555)
epoch:1, test (MRR@20: 0.1000, RECALL@20: 0.3000, MRR@10: 0.0900, RECALL@10: 0.2000)
Period 2:
epoch:2, test (MRR@20: 0.2000, RECALL@20: 0.5000, MRR@10: 0.1900, RECALL@10: 0.4000)
Average: (MRR@20: 0.1500, RECALL@20: 0.4000, MRR@10: 0.1400, RECALL@10: 0.3000)
"""


def test_reads_test_lines_per_period(tmp_path):
    path = tmp_path / "Training_logs.txt"
    path.write_text(LOG)
    run = read_training_log(str(path))
    assert run == {1: {"mrr20": 0.1, "recall20": 0.3, "mrr10": 0.09, "recall10": 0.2},
                   2: {"mrr20": 0.2, "recall20": 0.5, "mrr10": 0.19, "recall10": 0.4}}
    assert "| Recall@20 | 40.00 |" in table({"orig": run})


def test_cli_tables_runs_beside_reference(tmp_path):
    rows = [{"cycle": c, "epochs_run": 1, "best_epoch": 1, "mrr20": 0.1 * c, "recall20": 0.2 * c,
             "mrr10": 0.05 * c, "recall10": 0.1 * c, "test_examples": 10, "lambda": 0.0,
             "exemplars_kept": 0, "train_seconds": 1, "selection_seconds": 0, "test_seconds": 0}
             for c in (1, 2)]
    write_metrics_csv(str(tmp_path / "sample-ADER" / "metrics.csv"), rows)
    assert list(find_runs(str(tmp_path))) == ["sample-ADER"]
    log = tmp_path / "orig" / "Training_logs.txt"
    log.parent.mkdir()
    log.write_text(LOG)
    result = subprocess.run(
        [sys.executable, "-m", "ader_tf.report", str(tmp_path), f"--reference_log={log}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert "| Recall@20 | 30.00 | 40.00 |" in result.stdout
    assert os.path.isfile(tmp_path / "report.png")


def test_plot_draws_references_dashed_in_their_runs_colour(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ader_tf import report

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to inspect it
    ours = {1: {"recall20": 0.49, "mrr20": 0.17}, 2: {"recall20": 0.50, "mrr20": 0.18}}
    paper = {1: {"recall20": 0.495, "mrr20": 0.177}, 2: {"recall20": 0.508, "mrr20": 0.182}}
    report.plot({"ader": ours}, str(tmp_path / "plot.png"), references={"ader": paper})
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    recall_axis = figures[0].axes[0]
    solid, dashed = recall_axis.get_lines()
    assert solid.get_label() == "ader" and dashed.get_label() == "paper ader"
    assert dashed.get_linestyle() == "--" and dashed.get_color() == solid.get_color()
    assert list(dashed.get_ydata()) == [49.5, 50.8]


def test_a_dozen_runs_get_a_dozen_colours(tmp_path, monkeypatch):
    """Matplotlib's default colour cycle repeats after 10 lines; a table of 12 methods must not
    draw two of them in one colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ader_tf import report

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    runs = {f"method{i}": {1: {"recall20": 0.4 + i / 100, "mrr20": 0.1}} for i in range(12)}
    report.plot(runs, str(tmp_path / "plot.png"))
    colours = [line.get_color() for line in figures[0].axes[0].get_lines()]
    assert len(colours) == 12 and len(set(map(tuple, colours))) == 12


def _matrix_rows(recalls: dict[tuple[int, int], float]) -> list[dict]:
    return [{"cycle": c, "period": p, "recall20": r, "mrr20": r / 4, "ndcg20": r / 2,
             "probe_examples": 10} for (c, p), r in recalls.items()]


def test_forgetting_of_runs_with_probes_is_compared(tmp_path):
    """Runs with an accuracy_matrix.csv get a forgetting table (points of Recall@20) and
    forgetting.png; a run without one is left out of both."""
    from ader_tf.continual.artifacts import write_accuracy_matrix_csv
    from ader_tf.report import find_matrices, forgetting_table

    rows = [{"cycle": c, "epochs_run": 1, "best_epoch": 1, "mrr20": 0.1, "recall20": 0.2,
             "mrr10": 0.05, "recall10": 0.1} for c in (1, 2, 3)]
    # Cycle c learns period c - 1: ADER keeps period 0, Finetune loses it.
    ader = {(1, 0): 0.6, (2, 0): 0.6, (2, 1): 0.7, (3, 0): 0.5, (3, 1): 0.7, (3, 2): 0.8}
    finetune = {(1, 0): 0.6, (2, 0): 0.3, (2, 1): 0.8, (3, 0): 0.2, (3, 1): 0.4, (3, 2): 0.9}
    for name, recalls in (("sample-ADER", ader), ("sample-finetune", finetune)):
        write_metrics_csv(str(tmp_path / name / "metrics.csv"), rows)
        write_accuracy_matrix_csv(str(tmp_path / name / "accuracy_matrix.csv"),
                                  _matrix_rows(recalls))
    write_metrics_csv(str(tmp_path / "sample-joint" / "metrics.csv"), rows)
    assert list(find_matrices(str(tmp_path))) == ["sample-ADER", "sample-finetune"]
    text = forgetting_table(find_matrices(str(tmp_path)))
    assert "| forgetting | sample-ADER (3 cycles) | sample-finetune (3 cycles) |" in text
    # ADER: cycle 2's past is 0.6, cycle 3's (0.5 + 0.7) / 2; Finetune: 0.3, (0.2 + 0.4) / 2.
    assert "| Average past Recall@20 | 60.00 | 30.00 |" in text
    # ADER: ((0.5 - 0.6) + (0.7 - 0.7)) / 2; Finetune: ((0.2 - 0.6) + (0.4 - 0.8)) / 2.
    assert "| BWT | -5.00 | -40.00 |" in text
    assert "| Forgetting | 5.00 | 40.00 |" in text
    assert "| Plasticity | 70.00 | 76.67 |" in text
    result = subprocess.run([sys.executable, "-m", "ader_tf.report", str(tmp_path)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                            check=True)
    assert text in result.stdout
    assert (tmp_path / "forgetting.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_malformed_accuracy_matrix_is_named(tmp_path):
    from ader_tf.report import ReportInputError, find_matrices

    path = tmp_path / "sample-ADER" / "accuracy_matrix.csv"
    path.parent.mkdir()
    path.write_text("cycle,period,recall20,mrr20,ndcg20,probe_examples\n1,0,high,0.1,0.2,5\n")
    with pytest.raises(ReportInputError, match=r"accuracy_matrix.csv:2: a row needs a number"):
        find_matrices(str(tmp_path))
