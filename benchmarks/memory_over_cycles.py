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
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_DATASET = flags.DEFINE_string("dataset", "sample", "Dataset (as main.py's --dataset).")
_DATA_DIR = flags.DEFINE_string("data_dir", "data", "Folder with <dataset>/period_*.txt.")
_CYCLES = flags.DEFINE_integer("cycles", 0, "Cycles per run (0 = all).")
_EPOCHS = flags.DEFINE_integer("num_epochs", 1, "Training epochs per cycle.")
_GROWTH = flags.DEFINE_list("growth", ["1", "2"], "The --table_growth values compared.")
_OUT = flags.DEFINE_string("out", None, "Also write the JSON summary here.")
_CHILD = flags.DEFINE_float("child", None, "Internal: run one setting and print its rows.")

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
    from ader_tf.plugins import make_config

    with tempfile.TemporaryDirectory() as results_dir:
        config = make_config(dataset=_DATASET.value, data_dir=_DATA_DIR.value,
                        results_dir=results_dir, cycles=_CYCLES.value,
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


def _run_setting(growth: str) -> list[dict]:
    """The rows of one setting, run in a fresh Python process."""
    command = [sys.executable, os.path.abspath(__file__), f"--child={growth}",
               f"--dataset={_DATASET.value}", f"--data_dir={_DATA_DIR.value}",
               f"--cycles={_CYCLES.value}", f"--num_epochs={_EPOCHS.value}"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the run with --table_growth={growth} failed:\n{done.stderr[-3000:]}")
    return [json.loads(line[len(_ROW):]) for line in done.stdout.splitlines()
            if line.startswith(_ROW)]


def _summary(rows: list[dict]) -> dict:
    first, last = rows[0]["live_gb"], rows[-1]["live_gb"]
    per_cycle = (last - first) / (len(rows) - 1) if len(rows) > 1 else 0.0
    rebuilds = sum(a["table_items"] != b["table_items"] for a, b in zip(rows, rows[1:]))
    return {"cycles": len(rows), "live_gb_first": first, "live_gb_last": last,
            "gb_per_cycle_after_first": round(per_cycle, 4), "table_rebuilds": rebuilds}


def main(argv: list[str]) -> None:
    del argv
    if _CHILD.value is not None:
        _run_child(_CHILD.value)
        return
    runs = {}
    for growth in _GROWTH.value:
        print(f"--table_growth={growth} ...", flush=True)
        runs[growth] = _run_setting(growth)
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
