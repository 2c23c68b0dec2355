"""Live memory after each cycle of a run, with item tables that grow exactly or with spare rows.

    python benchmarks/memory_over_cycles.py [--dataset=sample --data_dir=data --cycles=0
        --num_epochs=1 --growth=1,2 --out=memory_over_cycles.json]

Each `--growth` value (`--table_growth` of the run) runs in a fresh process, one after the
other: `ContinualRunner` on `--dataset` with `--num_epochs` per cycle and no SavedModel
export. After each cycle the child collects garbage and records its resident memory
(VmRSS: what the process holds then, not its peak) and the size of its item tables.

A model whose tables grow is a new model: its functions are traced again, and TensorFlow keeps
some native memory for every trace it frees. Exact tables (growth 1) rebuild in every cycle
that brings new items; growth 2 rebuilds about log2(last / first items) times.

Printed: a table of live GB and table rows per cycle and setting, then one JSON line with, per
setting, the live GB after the first and the last cycle, the mean growth per cycle after the
first, and its ratio to the first setting's. `--out` also writes that JSON.

A live stream (`--stream_periods=30`): the built-in sample's generator writes a click log of
that many weekly periods (plus the first test period); `python -m preprocessing` makes the
first two period files from it, then each week is appended (`--append`) and the run resumed
(`main.py`'s resume, in a fresh process as a deployment re-runs it) to train that week's
cycle. Per appended week: live GB after the cycle and the process's peak RSS. Then one process
runs the same periods from the start, all cycles in a row (a stream served by one long-lived
process), live GB after each, and its metrics.csv is compared with the resumed stream's (they
must be the same). The stream uses the run's default `--table_growth` unless
`--growth` is given (then its first value).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from absl import app, flags
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ader_tf.data.sample import SAMPLE_PERIOD_DAYS  # noqa: E402  (after the path above)
from ader_tf.plugins import make_config  # noqa: E402

_DATASET = flags.DEFINE_string("dataset", "sample", "Dataset (as main.py's --dataset).")
_DATA_DIR = flags.DEFINE_string("data_dir", "data", "Folder with <dataset>/period_*.txt.")
_CYCLES = flags.DEFINE_integer("cycles", 0, "Cycles per run (0 = all).")
_EPOCHS = flags.DEFINE_integer("num_epochs", 1, "Training epochs per cycle.")
_GROWTH = flags.DEFINE_list("growth", ["1", "2"], "The --table_growth values compared.")
_OUT = flags.DEFINE_string("out", None, "Also write the JSON summary here.")
_STREAM = flags.DEFINE_integer(
    "stream_periods", 0, "Instead: a live stream of this many appended weekly periods (0 = off).")
_CHILD = flags.DEFINE_float("child", None, "Internal: run one setting and print its rows.")
_CHILD_RESULTS = flags.DEFINE_string("child_results_dir", None,
                                     "Internal: the child's results folder (kept to resume).")

_ROW = "MEMORY_ROW "


def _live_gb() -> float:
    """The process's resident memory now (VmRSS), in GB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1e6
    raise RuntimeError("no VmRSS line in /proc/self/status")


def _run_child(growth: float) -> None:
    """Runs one setting in this process and prints a JSON row after each cycle."""
    import gc

    from ader_tf.continual.runner import ContinualRunner

    with tempfile.TemporaryDirectory() as scratch:
        config = make_config(dataset=_DATASET.value, data_dir=_DATA_DIR.value,
                        results_dir=_CHILD_RESULTS.value or scratch, cycles=_CYCLES.value,
                        num_epochs=_EPOCHS.value, export_saved_models=False, progress=False,
                        table_growth=growth)

        def after_cycle(cycle: int, phase: str) -> None:
            if phase != "outputs_written":
                return
            gc.collect()
            model = runner.model  # the runner below; this is called only while it runs
            print(_ROW + json.dumps({"cycle": cycle, "live_gb": round(_live_gb(), 3),
                                     "table_items": model.encoder.num_items,
                                     "max_item": model.max_item}), flush=True)

        runner = ContinualRunner(config, on_phase=after_cycle)
        runner.run()


def _run_setting(growth: str, dataset: str | None = None, data_dir: str | None = None,
                 results_dir: str | None = None) -> tuple[list[dict], float]:
    """The rows of one setting, run in a fresh Python process, and that process's peak RSS in GB.

    With `results_dir` the run's folder is kept there, so the next call resumes it.
    """
    dataset, data_dir = dataset or _DATASET.value, data_dir or _DATA_DIR.value
    command = [sys.executable, os.path.abspath(__file__), f"--child={growth}",
               f"--dataset={dataset}", f"--data_dir={data_dir}",
               f"--cycles={_CYCLES.value}", f"--num_epochs={_EPOCHS.value}"]
    if results_dir:
        command.append(f"--child_results_dir={results_dir}")
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        # wait4 gives this child's own peak RSS (getrusage's children figure is the max over all).
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise RuntimeError(f"the run with --table_growth={growth} failed:\n"
                               f"{err.read()[-3000:]}")
        rows = [json.loads(line[len(_ROW):]) for line in out.read().splitlines()
                if line.startswith(_ROW)]
    return rows, usage.ru_maxrss / 1e6  # ru_maxrss is in KB on Linux


def _summary(rows: list[dict]) -> dict:
    first, last = rows[0]["live_gb"], rows[-1]["live_gb"]
    per_cycle = (last - first) / (len(rows) - 1) if len(rows) > 1 else 0.0
    rebuilds = sum(a["table_items"] != b["table_items"] for a, b in zip(rows, rows[1:]))
    return {"cycles": len(rows), "live_gb_first": first, "live_gb_last": last,
            "gb_per_cycle_after_first": round(per_cycle, 4), "table_rebuilds": rebuilds}


def _preprocess(raw_path: str, output_dir: str, append: bool) -> None:
    """`python -m preprocessing` on the generated click log, as the README's shop walk runs it."""
    command = [sys.executable, "-m", "preprocessing", f"--dataset={raw_path}",
               f"--output_dir={output_dir}"]
    command += ["--append"] if append else [
        "--session_column=session_id", "--item_column=item_id", "--time_column=timestamp",
        f"--period_days={SAMPLE_PERIOD_DAYS}"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=root)
    if done.returncode != 0:
        raise RuntimeError(f"preprocessing failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def _same_metrics(first: str, second: str) -> bool:
    """Whether two results folders' runs have the same per-cycle figures (times aside)."""
    import pandas as pd

    from ader_tf.continual.artifacts import METRIC_COLUMNS

    timed = {"train_seconds", "selection_seconds", "test_seconds", "cpu_seconds", "peak_rss_gb"}
    figures = [c for c in METRIC_COLUMNS if c not in timed]
    tables = [pd.read_csv(os.path.join(folder, "STREAM-ADER", "metrics.csv"))[figures]
              for folder in (first, second)]
    return tables[0].equals(tables[1])


def _stream(weeks: int, growth: str) -> dict:
    """Appends weekly periods one at a time, resuming the run after each; then one process."""
    from ader_tf.data.sample import SampleConfig, write_sample_click_log

    sample = SampleConfig(num_periods=weeks + 1)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        raw = os.path.join(scratch, "clicks.csv")
        data_dir, results = os.path.join(scratch, "data"), os.path.join(scratch, "results")
        for week in tqdm(range(1, weeks + 1), desc="appended weeks", unit="week"):
            write_sample_click_log(raw, sample, periods=range(week + 1))
            _preprocess(raw, os.path.join(data_dir, "STREAM"), append=week > 1)
            cycle_rows, peak = _run_setting(growth, "STREAM", data_dir, results)
            if len(cycle_rows) != 1:
                raise RuntimeError(f"week {week}: expected one new cycle, got {len(cycle_rows)}")
            rows.append({**cycle_rows[0], "peak_gb": round(peak, 3)})
        print("one process over the same periods ...", flush=True)
        whole_results = os.path.join(scratch, "results-one-process")
        one_process, one_peak = _run_setting(growth, "STREAM", data_dir, whole_results)
        same = _same_metrics(results, whole_results)
    print("cycle  max_item  rows  resumed: live GB, peak GB  one process: live GB")
    for row, whole in zip(rows, one_process):
        print(f"{row['cycle']:>5}  {row['max_item']:>8}  {row['table_items']:>4}  "
              f"{row['live_gb']:>16.3f} {row['peak_gb']:>8.3f}  {whole['live_gb']:>20.3f}")
    resumed = _summary(rows)
    resumed["peak_gb_max"] = max(r["peak_gb"] for r in rows)
    resumed["peak_gb_first"] = rows[0]["peak_gb"]
    whole = {**_summary(one_process), "peak_gb": round(one_peak, 3)}
    print(f"metrics.csv of the resumed stream and of the one process: "
          f"{'the same' if same else 'DIFFERENT'}")
    return {"stream_periods": weeks, "table_growth": float(growth), "num_epochs": _EPOCHS.value,
            "same_metrics": same, "resumed_per_week": resumed, "one_process": whole,
            "rows": [{**r, "one_process_live_gb": w["live_gb"]}
                     for r, w in zip(rows, one_process)]}


def main(argv: list[str]) -> None:
    del argv
    if _CHILD.value is not None:
        _run_child(_CHILD.value)
        return
    if _STREAM.value:
        growth = (_GROWTH.value[0] if flags.FLAGS["growth"].present
                  else str(make_config().table_growth))
        result = _stream(_STREAM.value, growth)
        print(json.dumps({k: v for k, v in result.items() if k != "rows"}))
        if _OUT.value:
            with open(_OUT.value, "w") as f:
                json.dump(result, f, indent=2)
        return
    runs = {}
    for growth in _GROWTH.value:
        print(f"--table_growth={growth} ...", flush=True)
        runs[growth], _ = _run_setting(growth)
    header = "cycle  max_item  " + "  ".join(f"growth {g}: rows, live GB" for g in runs)
    print(header)
    for i, row in enumerate(runs[_GROWTH.value[0]]):
        cells = [f"{runs[g][i]['table_items']:>7} {runs[g][i]['live_gb']:>6.3f}"
                 for g in runs if i < len(runs[g])]
        print(f"{row['cycle']:>5}  {row['max_item']:>8}  " + "  ".join(f"{c:>24}" for c in cells))
    summary = {g: _summary(rows) for g, rows in runs.items()}
    base = summary[_GROWTH.value[0]]["gb_per_cycle_after_first"]
    for values in summary.values():
        values["per_cycle_ratio_to_first_setting"] = (
            round(values["gb_per_cycle_after_first"] / base, 3) if base > 0 else None)
    result = {"dataset": _DATASET.value, "num_epochs": _EPOCHS.value, "settings": summary}
    print(json.dumps(result))
    if _OUT.value:
        with open(_OUT.value, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    app.run(main)
