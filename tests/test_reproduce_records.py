"""benchmarks/reproduce.py: finished runs leave records that outlive their run folders."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from ader_tf.errors import RUN_IN_USE
from benchmarks import reproduce_runs as runs
from benchmarks import reproduce_tables as tables
from benchmarks.reproduce_options import ReproduceOptions


def _finished_run(folder, recall20: list[float]) -> None:
    """What main.py leaves of a finished run, checkpoints aside."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{c},{r / 3},{r},{r / 4},{r / 2}\n" for c, r in enumerate(recall20, 1))
    (folder / "metrics.csv").write_text("cycle,mrr20,recall20,mrr10,recall10\n" + rows)
    (folder / "summary.json").write_text(json.dumps({"cycles_completed": len(recall20)}))
    (folder / "config.json").write_text(json.dumps({"dataset": "DIGINETICA"}))
    (folder / "timing.json").write_text(json.dumps(
        [{"wall_seconds": 600, "peak_rss_gb": 2.0, "cpu_seconds": 1100, "cycles_before": 0,
          "cycles_after": len(recall20)}]))
    (folder / "checkpoints").mkdir(exist_ok=True)


def _periods(data_dir, count: int) -> None:
    (data_dir / "DIGINETICA").mkdir(parents=True)
    for p in range(count):
        (data_dir / "DIGINETICA" / f"period_{p}.txt").write_text("")


def _options(tmp_path, **overrides) -> ReproduceOptions:
    values = {"results_dir": str(tmp_path / "runs"), "records_dir": str(tmp_path / "records"),
              "data_dir": str(tmp_path / "data"), "dataset": "DIGINETICA",
              "methods": ["finetune"], "seeds": ["0"], "cycles": 0}
    return ReproduceOptions(**{**values, **overrides})


def test_the_tables_are_rebuilt_from_the_record_once_the_run_folder_is_gone(tmp_path):
    options = _options(tmp_path)
    folder = tmp_path / "runs" / "DIGINETICA-finetune-seed0"
    _finished_run(folder, [0.46, 0.47, 0.48])
    before = (tables.main_table(options), tables.per_cycle_table(options))
    runs.keep_record(str(folder), runs.record_dir(options, "finetune", "0"))
    shutil.rmtree(folder)
    assert runs.source_dir(options, "finetune", "0") == runs.record_dir(
        options, "finetune", "0")
    assert (tables.main_table(options), tables.per_cycle_table(options)) == before
    assert "47.00 / 15.67" in before[1]  # the mean of the three cycles, read from the record
    record = tmp_path / "records" / "DIGINETICA-finetune-seed0"
    assert sorted(p.name for p in record.iterdir()) == [
        "config.json", "metrics.csv", "summary.json", "timing.json"]


def test_the_folder_with_more_finished_cycles_is_the_one_read(tmp_path):
    options = _options(tmp_path)
    record = tmp_path / "records" / "DIGINETICA-finetune-seed0"
    _finished_run(record, [0.46, 0.47, 0.48])
    folder = tmp_path / "runs" / "DIGINETICA-finetune-seed0"
    _finished_run(folder, [0.40])  # a new attempt, one cycle so far
    assert runs.source_dir(options, "finetune", "0") == str(record)
    _finished_run(folder, [0.40, 0.41, 0.42, 0.43])  # it went further than the record
    assert runs.source_dir(options, "finetune", "0") == str(folder)


def test_a_recorded_run_of_every_cycle_is_finished_by_the_period_files_count(tmp_path):
    _periods(tmp_path / "data", 4)  # period 0 trains only: 3 cycles
    options = _options(tmp_path)
    _finished_run(tmp_path / "records" / "DIGINETICA-finetune-seed0", [0.46, 0.47])
    assert not runs.finished(options, "finetune", "0")
    _finished_run(tmp_path / "records" / "DIGINETICA-finetune-seed0", [0.46, 0.47, 0.48])
    assert runs.finished(options, "finetune", "0")
    options = _options(tmp_path, data_dir=str(tmp_path / "elsewhere"))
    assert not runs.finished(options, "finetune", "0")  # no period files: cannot tell


def test_a_finished_process_leaves_its_record(tmp_path, monkeypatch):
    """run_one runs the command, times it, and copies the run's small files to its record."""
    _periods(tmp_path / "data", 3)
    folder = tmp_path / "runs" / "DIGINETICA-finetune-seed0"
    fake_main = (
        "import json, pathlib, sys\n"
        "f = pathlib.Path(sys.argv[1])\n"
        "(f / 'metrics.csv').write_text('cycle,mrr20,recall20,mrr10,recall10\\n"
        "1,0.1,0.3,0.1,0.2\\n2,0.1,0.3,0.1,0.2\\n')\n"
        "(f / 'summary.json').write_text(json.dumps({'cycles_completed': 2}))\n"
        "(f / 'checkpoints').mkdir()\n"
    )
    monkeypatch.setattr(runs, "command",
                        lambda *args: [sys.executable, "-c", fake_main, str(folder)])
    options = _options(tmp_path)
    runs.run_one(options, "finetune", "0")
    record = tmp_path / "records" / "DIGINETICA-finetune-seed0"
    assert sorted(p.name for p in record.iterdir()) == [
        "metrics.csv", "summary.json", "timing.json"]
    timing = json.loads((record / "timing.json").read_text())
    assert [(t["cycles_before"], t["cycles_after"]) for t in timing] == [(0, 2)]
    shutil.rmtree(folder)
    runs.run_one(options, "finetune", "0")  # finished by its record: not run again
    assert not folder.exists()


def test_a_run_another_process_is_running_is_passed_over(tmp_path, monkeypatch):
    """main.py's RUN_IN_USE exit: no timing, no record, no error; run_all names the run and
    goes on to the next."""
    _periods(tmp_path / "data", 3)
    ran = []

    def fake_command(options, method, seed, model):
        ran.append(method)
        code = RUN_IN_USE if method == "finetune" else 0
        return [sys.executable, "-c", f"import sys; sys.exit({code})"]

    monkeypatch.setattr(runs, "command", fake_command)
    options = _options(tmp_path, methods=["finetune", "dropout"])
    assert runs.run_all(options) == [("finetune", "0", "sasrec")]
    assert ran == ["finetune", "dropout"]
    folder = tmp_path / "runs" / "DIGINETICA-finetune-seed0"
    assert not (folder / "timing.json").exists()
    assert not (tmp_path / "records" / "DIGINETICA-finetune-seed0").exists()
    assert (tmp_path / "runs" / "DIGINETICA-dropout-seed0" / "timing.json").exists()

    monkeypatch.setattr(runs, "command", lambda *args: [sys.executable, "-c", "exit(2)"])
    with pytest.raises(RuntimeError, match="exit status 2"):  # any other failure stops
        runs.run_one(options, "finetune", "0")


def test_the_published_command_leaves_out_where_this_machine_kept_the_files():
    args = ["--dataset=YOOCHOOSE", "--methods=finetune,ewc", "--results_dir=/scratch/runs",
            "--results_md=/tmp/R.md", "--records_dir", "/tmp/records", "--norun",
            "--cycles", "4", "--section=y4"]
    assert tables.published_command(args) == (
        "python benchmarks/reproduce.py --dataset=YOOCHOOSE --methods=finetune,ewc --cycles 4 "
        "--section=y4")
