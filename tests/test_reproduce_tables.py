"""benchmarks/reproduce.py: several seeds get a row and a column each, then their mean."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from benchmarks import reproduce_costs as costs
from benchmarks import reproduce_runs as runs
from benchmarks import reproduce_tables as tables
from benchmarks.paper_results import load_paper_results
from benchmarks.reproduce_options import ReproduceOptions


def _options(results_dir, **values) -> ReproduceOptions:
    """The options of a table over the runs in ``results_dir``."""
    # The repository's committed records must not stand in for the runs these tests make.
    return ReproduceOptions(results_dir=str(results_dir),
                            records_dir=str(results_dir / "no-records"), **values)


def _run(results_dir, seed: str, recall20: list[float]) -> None:
    """A finished SASRec ADER run of DIGINETICA: one timed process, MRR@20 = Recall@20 / 3."""
    folder = results_dir / f"DIGINETICA-ader-seed{seed}"
    folder.mkdir(parents=True)
    rows = "".join(f"{c},{r / 3},{r},{r / 4},{r / 2}\n" for c, r in enumerate(recall20, 1))
    (folder / "metrics.csv").write_text("cycle,mrr20,recall20,mrr10,recall10\n" + rows)
    (folder / "timing.json").write_text(json.dumps(
        [{"wall_seconds": 600, "peak_rss_gb": 2.0, "cycles_before": 0,
          "cycles_after": len(recall20)}]))
    (folder / "stdout.txt").write_text("")


def _paper(cycles: list[int]) -> str:
    recall, mrr = load_paper_results().per_cycle["DIGINETICA"]["ader"]
    return (f"{np.mean([recall[c - 1] for c in cycles]):.2f} / "
            f"{np.mean([mrr[c - 1] for c in cycles]):.2f}")


def _cells(table: str, first: str) -> list[str]:
    row = next(line for line in table.splitlines() if line.startswith(f"| {first} |"))
    return [cell.strip() for cell in row.strip("|").split("|")][1:]


def test_two_seeds_get_a_column_each_and_their_mean_over_shared_cycles(tmp_path):
    _run(tmp_path, "0", [0.50, 0.52, 0.54])
    _run(tmp_path, "1", [0.40, 0.44])  # unfinished: two cycles so far
    options = _options(tmp_path, dataset="DIGINETICA", methods=["ader"], seeds=["0", "1"], cycles=0)
    table = tables.per_cycle_table(options)
    header = table.splitlines()[0]
    assert header == ("| cycle | ader seed 0 R@20 / MRR@20 | ader seed 1 R@20 / MRR@20 "
                      "| ader mean of seeds 0,1 | paper ader |")
    assert _cells(table, "2") == ["52.00 / 17.33", "44.00 / 14.67", "48.00 / 16.00",
                                  _paper([2])]
    assert _cells(table, "3") == ["54.00 / 18.00", "-", "-", "-"]
    # The row is over cycles 1-3; the columns that stop at cycle 2 say so.
    assert _cells(table, "mean of cycles 1-3") == [
        "52.00 / 17.33", "42.00 / 14.00 (cycles 1-2)", "46.50 / 15.50 (cycles 1-2)",
        _paper([1, 2]) + " (cycles 1-2)"]

    rows = tables.main_table(options)
    assert _cells(rows, "ader seed 0")[:2] == ["1-3", "52.00"]
    assert _cells(rows, "ader seed 1")[:2] == ["1-2", "42.00"]
    assert _cells(rows, "ader mean of seeds 0,1")[:3] == ["1-2", "46.50", "15.50"]


def test_one_seed_keeps_the_plain_method_names(tmp_path):
    _run(tmp_path, "0", [0.50, 0.52])
    options = _options(tmp_path, dataset="DIGINETICA", methods=["ader"], seeds=["0"], cycles=0)
    table = tables.per_cycle_table(options)
    assert table.splitlines()[0] == "| cycle | ader R@20 / MRR@20 | paper ader |"
    assert _cells(table, "mean of cycles 1-2") == ["51.00 / 17.00", _paper([1, 2])]
    rows = tables.main_table(options)
    assert _cells(rows, "ader")[:2] == ["1-2", "51.00"]
    assert "mean of seeds" not in rows


def test_a_cut_short_original_log_is_compared_over_the_cycles_it_has(tmp_path):
    _run(tmp_path, "0", [0.50, 0.52, 0.54])
    _run(tmp_path, "1", [0.40, 0.44, 0.48])
    log = tmp_path / "original" / "DIGINETICA-ader-seed0" / "Training_logs.txt"
    log.parent.mkdir(parents=True)
    log.write_text("".join(  # the original's format; stopped during cycle 3
        f"Period {c}:\nepoch:4, test (MRR@20: {r / 3:.4f}, RECALL@20: {r:.4f}, MRR@10: 0.1, "
        f"RECALL@10: 0.2)\n" for c, r in ((1, 0.48), (2, 0.51))) + "Period 3:\n")
    options = _options(tmp_path, dataset="DIGINETICA", methods=["ader"], seeds=["0", "1"],
                       cycles=0, reference_log=[str(log)])
    table = tables.side_by_side_table(options)
    recall, mrr = load_paper_results().per_cycle["DIGINETICA"]["ader"]
    assert table.splitlines()[0] == (
        "| cycle | metric | original DIGINETICA-ader-seed0 | ours mean over 2 seeds "
        "| ours min-max | ours std | paper ader |")
    assert _cells(table, "2") == ["Recall@20", "51.00", "48.00", "44.00-52.00", "4.00",
                                  f"{recall[1]:.2f}"]
    assert _cells(table, "3")[:2] == ["Recall@20", "-"]
    # Over all three cycles ours is 48.00 (seed means 52 and 44); the original has two.
    assert _cells(table, "mean") == ["Recall@20", "49.50 (cycles 1-2)", "48.00", "44.00-52.00",
                                     "4.00", f"{np.mean(recall[:3]):.2f}"]
    # Then every column over cycles 1-2 only: MRR@20 is the second row of each pair.
    rows = [line for line in table.splitlines() if line.startswith("| mean of cycles 1-2 |")]
    assert [_cells(line, "mean of cycles 1-2") for line in rows] == [
        ["Recall@20", "49.50", "46.50", "42.00-51.00", "4.50", f"{np.mean(recall[:2]):.2f}"],
        ["MRR@20", "16.50", "15.50", "14.00-17.00", "1.50", f"{np.mean(mrr[:2]):.2f}"]]


def test_no_paper_column_beside_shorter_runs_than_the_papers(tmp_path):
    _run(tmp_path, "0", [0.50])
    log = tmp_path / "original" / "run" / "Training_logs.txt"
    log.parent.mkdir(parents=True)
    log.write_text("Period 1:\nepoch:3, test (MRR@20: 0.1, RECALL@20: 0.3, MRR@10: 0.1, "
                   "RECALL@10: 0.2)\n")
    options = _options(tmp_path, dataset="DIGINETICA", methods=["ader"], seeds=["0"], cycles=0,
                       num_epochs=3, reference_log=[str(log)])
    (tmp_path / "DIGINETICA-ader-seed0").rename(runs.run_dir(options, "ader", "0"))  # -e3
    table = tables.side_by_side_table(options)
    assert "paper" not in table
    assert _cells(table, "mean") == ["Recall@20", "30.00", "50.00", "50.00-50.00", "0.00"]


def test_the_cost_table_reads_ndcg_cpu_time_and_what_the_last_cycle_kept(tmp_path):
    _run(tmp_path, "0", [0.50, 0.52])
    folder = tmp_path / "DIGINETICA-ader-seed0"
    with open(folder / "metrics.csv") as f:
        lines = f.read().splitlines()
    lines = [lines[0] + ",ndcg20"] + [line + f",{v}" for line, v in zip(lines[1:], (0.2, 0.3))]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    timing = json.loads((folder / "timing.json").read_text())
    (folder / "timing.json").write_text(json.dumps([dict(timing[0], cpu_seconds=900)]))
    (folder / "exemplars").mkdir()
    (folder / "exemplars" / "cycle_1.npz").write_bytes(b"x" * 2**20)  # not the last cycle's
    (folder / "exemplars" / "cycle_2.npz").write_bytes(b"x" * 2**21)
    (folder / "ewc").mkdir()
    (folder / "ewc" / "cycle_2.npz").write_bytes(b"x" * 2**20)
    best = folder / "checkpoints" / "cycle_2" / "epoch_3"
    best.mkdir(parents=True)
    (best / "ckpt.data-00000-of-00001").write_bytes(b"x" * 3 * 2**20)  # weights + 2 moments
    options = _options(tmp_path, dataset="DIGINETICA", methods=["ader"], seeds=["0"], cycles=0)
    assert _cells(tables.cost_table(options), "ader") == [
        "1-2", "25.00", "15.0 min", "10.0 min", "2.00 GB",
        "3.0 MB of files + teacher 1.0 MB"]


def _add_phase_columns(folder, costs: list[tuple], epochs: int = 4, selection: float = 2,
                       test: float = 3) -> None:
    """Appends to metrics.csv, per cycle: epochs, the phases' seconds ((train, CPU s, peak GB)
    from ``costs``, "" for unrecorded) and the same selection and test seconds."""
    with open(folder / "metrics.csv") as f:
        lines = f.read().splitlines()
    lines = [lines[0] + ",epochs_run,train_seconds,selection_seconds,test_seconds,"
             "cpu_seconds,peak_rss_gb"] + [line + f",{epochs},{t},{selection},{test},{cpu},{rss}"
                                           for line, (t, cpu, rss) in zip(lines[1:], costs)]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")


def test_a_run_split_over_processes_adds_up_its_cycles_cpu_times_and_peaks(tmp_path):
    """A run killed and resumed has no one process's timing; its cycles' columns stand in."""
    _run(tmp_path, "0", [0.50, 0.52, 0.54])
    folder = tmp_path / "DIGINETICA-ader-seed0"
    costs = [(60, 100, 1.9), (90, 200, 2.25), (30, 50, 2.0)]  # train s, CPU s, peak GB
    _add_phase_columns(folder, costs, epochs=3, selection=0, test=0)
    lines = (folder / "metrics.csv").read_text().splitlines()
    # The first process ran cycle 1; the one that ran cycles 2-3 was killed (no timing).
    (folder / "timing.json").write_text(json.dumps(
        [{"wall_seconds": 70, "peak_rss_gb": 1.9, "cpu_seconds": 100, "cycles_before": 0,
          "cycles_after": 1}]))
    options = _options(tmp_path, dataset="DIGINETICA", methods=["ader"], seeds=["0"], cycles=0)
    cells = _cells(tables.cost_table(options), "ader")
    assert cells[2:5] == ["sum of cycles 5.8 min", "sum of phases 3.0 min", "2.25 GB"]
    # A table of the first two cycles reads only theirs.
    options = _options(tmp_path, dataset="DIGINETICA", methods=["ader"], seeds=["0"], cycles=2)
    assert _cells(tables.cost_table(options), "ader")[2] == "sum of cycles 5.0 min"
    # A cycle from before the columns existed: the sums would be short, so none is given.
    lines[1] = lines[1].rsplit(",", 2)[0] + ",,"
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    options = _options(tmp_path, dataset="DIGINETICA", methods=["ader"], seeds=["0"], cycles=0)
    assert _cells(tables.cost_table(options), "ader")[2] == "-"


def test_the_cycle_timing_table_gives_each_cycles_cpu_time_and_peak(tmp_path):
    """A paused run's wall seconds say little; each cycle's CPU seconds and peak are shown."""
    _run(tmp_path, "0", [0.50, 0.52])
    folder = tmp_path / "DIGINETICA-ader-seed0"
    _add_phase_columns(folder, [(400, 600, 1.5), (9000, 720, 2.25)])  # cycle 2 paused
    (folder / "timing.json").unlink()  # resumed over processes: no one wall clock
    options = _options(tmp_path, dataset="DIGINETICA", methods=["ader"], seeds=["0"], cycles=0)
    table = tables.cycle_timing_table(options)
    assert _cells(table, "1") == ["4", "400", "100.0", "2.0", "3.0", "600", "1.50"]
    assert _cells(table, "2") == ["4", "9000", "2250.0", "2.0", "3.0", "720", "2.25"]
    assert table.splitlines()[-1] == (
        "CPU time of these cycles: 22.0 min; the largest peak RSS: 2.25 GB.")
    # The wall-clock sum counts the phases only, not the CPU or memory columns.
    minutes, how, rss = costs.run_time(options, "ader", "0")
    assert (minutes, how, rss) == (pytest.approx((400 + 9000 + 2 * 5) / 60),
                                   "sum of phases", "2.25 GB")


def test_the_cycle_timing_table_gives_no_cpu_sum_when_a_cycle_did_not_record_it(tmp_path):
    _run(tmp_path, "0", [0.50, 0.52])
    folder = tmp_path / "DIGINETICA-ader-seed0"
    _add_phase_columns(folder, [(400, "", ""), (500, 720, 2.25)])
    options = _options(tmp_path, dataset="DIGINETICA", methods=["ader"], seeds=["0"], cycles=0)
    table = tables.cycle_timing_table(options)
    assert _cells(table, "1")[-2:] == ["-", "-"]
    assert _cells(table, "2")[-2:] == ["720", "2.25"]
    assert "CPU time of these cycles" not in table


def test_a_new_section_goes_before_the_history_and_an_old_one_stays_in_place(tmp_path):
    write_section = tables.write_section
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\n<!-- BEGIN a -->\nold\n<!-- END a -->\n\n# History\n\nlog\n")
    write_section(str(path), "b", "new")
    write_section(str(path), "a", "renewed")
    assert path.read_text() == ("# Results\n\n<!-- BEGIN a -->\nrenewed\n<!-- END a -->\n\n"
                                "<!-- BEGIN b -->\nnew\n<!-- END b -->\n\n# History\n\nlog\n")
    bare = tmp_path / "bare.md"
    write_section(str(bare), "c", "body")
    assert bare.read_text() == "# Results\n\n<!-- BEGIN c -->\nbody\n<!-- END c -->\n"


def _method_run(results_dir, method: str, seed: str, recall20: list[float]) -> None:
    """A finished run of ``method`` (named as reproduce.py names it), MRR@20 = Recall@20 / 3."""
    folder = results_dir / f"DIGINETICA-{method}-seed{seed}"
    folder.mkdir(parents=True)
    rows = "".join(f"{c},{r / 3},{r},{r / 4},{r / 2}\n" for c, r in enumerate(recall20, 1))
    (folder / "metrics.csv").write_text("cycle,mrr20,recall20,mrr10,recall10\n" + rows)


def test_the_spread_table_compares_each_method_with_ader_seed_by_seed(tmp_path):
    ader = {"0": [0.50, 0.52], "1": [0.49, 0.51], "2": [0.51, 0.53]}  # means 51, 50, 52
    for seed, recall in ader.items():
        _method_run(tmp_path, "ader", seed, recall)
        # Dropout: 1.1-1.3 points under ADER in every seed; Finetune: as ADER, +-1 point.
        _method_run(tmp_path, "dropout", seed, [r - 0.011 - 0.001 * int(seed) for r in recall])
        _method_run(tmp_path, "finetune", seed,
                    [r + (0.01 if seed == "0" else -0.01 if seed == "1" else 0) for r in recall])
    _method_run(tmp_path, "ewc", "0", [0.3, 0.3])  # one seed: no spread to give
    options = _options(tmp_path, dataset="DIGINETICA", seeds=["0", "1", "2"], cycles=0,
                       methods=["ader", "dropout", "finetune", "ewc"])
    table = tables.spread_table(options)
    assert _cells(table, "ader") == ["0,1,2", "1-2", "51.00 ± 1.00", "17.00 ± 0.33", "-", "-",
                                     "-"]
    dropout = _cells(table, "dropout")
    assert dropout[2] == "49.80 ± 0.95" and dropout[4] == "-1.20 ± 0.10"
    # Paired by seed the gap is clear (p < 0.01), yet smaller than the seeds' two spreads.
    assert float(dropout[5]) < 0.01 and dropout[6] == "no"
    finetune = _cells(table, "finetune")
    assert finetune[4] == "+0.00 ± 1.00" and float(finetune[5]) > 0.9 and finetune[6] == "no"
    assert "| ewc |" not in table
    # A gap wider than both spreads is beyond them.
    for seed, recall in ader.items():
        _method_run(tmp_path, "joint", seed, [r + 0.03 for r in recall])
    joint = _cells(tables.spread_table(dataclasses.replace(options, methods=["ader", "joint"])),
                   "joint")
    assert joint[4:] == ["+3.00 ± 0.00", "-", "yes"]  # no p-value: the gap never varies


def test_the_tuned_table_states_each_methods_values_and_budget(tmp_path):
    from ader_tf.tuned import record_tuned

    path = str(tmp_path / "tuned.json")
    for method, values, pruned in (("ewc", {"lambda_": 123.456}, 3),
                                   ("derpp", {"derpp_alpha": 0.5, "derpp_beta": 1.0}, 2)):
        record_tuned(path, "DIGINETICA", method, {
            "values": values, "objective": 0.51234,
            "trials": {"complete": 8 - pruned, "pruned": pruned, "fail": 1},
            "tuning": {"tune_cycles": [2, 3], "seeds": [0], "startup_trials": 4}})
    options = _options(tmp_path, dataset="DIGINETICA", tuned=path,
                       methods=["ewc", "derpp", "finetune", "mas"])
    table = tables.tuned_table(options)
    assert _cells(table, "ewc") == ["--lambda_=123.5", "51.23 (2,3)", "5 / 3 / 1 (4)", "0"]
    assert _cells(table, "derpp")[:3] == ["--derpp_alpha=0.5, --derpp_beta=1", "51.23 (2,3)",
                                          "6 / 2 / 1 (4)"]
    assert _cells(table, "finetune")[0] == "none (nothing to tune: the defaults)"
    assert _cells(table, "mas")[0] == "none (not tuned: the defaults)"
    # MAS has a search space and no values in the file: its runs are not started as tuned.
    with pytest.raises(ValueError, match=r"tuned.json: no tuned values for mas; tune them"):
        runs.run_all(options)
    runs.check_tuned(dataclasses.replace(options, methods=("ewc", "derpp", "finetune")))
