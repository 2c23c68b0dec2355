"""One training process with every core's thread, or one one-thread process per core?

    python benchmarks/processes_vs_threads.py --data_dir=../shared/data/DIGINETICA [--rounds=2]

Runs ``benchmarks/train_step.py`` (the SASRec step of DIGINETICA's cycles 1 and 2) as one
process with TensorFlow's default threads, then as one process per core, each pinned to its
core (``taskset``) with one intra-op and one inter-op thread, at the same time; the rounds
alternate the two layouts. Throughput of the second is the sum of its processes'. This is what
decides how to spend a machine on many runs (a table over seeds, a tuning study): several
one-thread processes (``reproduce.py`` and ``ader_tf.tune`` both run from several processes)
or one run at a time.

The last line printed is one JSON object: per layout and cycle, the median examples/s over
the rounds, and the ratio of the per-core processes to the one process.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

from absl import app, flags

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder with period_0.txt, period_1.txt.")
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Rounds; each runs both layouts.")
_STEPS = flags.DEFINE_integer("steps", 15, "Timed steps per cycle of each train_step.py.")

STEP_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_step.py")


def step_command(threads: int) -> list[str]:
    """train_step.py with ``threads`` TensorFlow threads (0: its default)."""
    return [sys.executable, STEP_SCRIPT, f"--data_dir={_DATA_DIR.value}",
            f"--steps={_STEPS.value}", "--repeats=2", f"--threads={threads}"]


def last_json(output: str) -> dict:
    """The JSON object train_step.py prints last."""
    return json.loads(output.strip().splitlines()[-1])


def one_process() -> dict[str, float]:
    """Examples/s of one process with TensorFlow's default threads, per cycle."""
    out = subprocess.run(step_command(0), capture_output=True, text=True, check=True).stdout
    result = last_json(out)
    return {c: result[c]["examples_per_second"] for c in ("cycle1", "cycle2")}


def process_per_core(cores: int) -> dict[str, float]:
    """Summed examples/s of ``cores`` one-thread processes, each pinned to its core."""
    procs = [subprocess.Popen(["taskset", "-c", str(core), *step_command(1)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for core in range(cores)]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"train_step.py failed (exit status {proc.returncode})")
        results.append(last_json(out))
    return {c: sum(r[c]["examples_per_second"] for r in results) for c in ("cycle1", "cycle2")}


def main(argv: list[str]) -> None:
    del argv
    cores = len(os.sched_getaffinity(0))
    runs: dict[str, list[dict[str, float]]] = {"one_process": [], "process_per_core": []}
    for round_ in range(_ROUNDS.value):
        layouts = ["one_process", "process_per_core"]
        for layout in layouts if round_ % 2 == 0 else layouts[::-1]:
            result = one_process() if layout == "one_process" else process_per_core(cores)
            runs[layout].append(result)
            print(f"round {round_ + 1} {layout}: {result}", flush=True)
    medians = {layout: {c: round(statistics.median(r[c] for r in results), 1)
                        for c in ("cycle1", "cycle2")}
               for layout, results in runs.items()}
    print(json.dumps({
        "cores": cores, **medians,
        "ratio": {c: round(medians["process_per_core"][c] / medians["one_process"][c], 2)
                  for c in ("cycle1", "cycle2")},
    }))


if __name__ == "__main__":
    flags.mark_flag_as_required("data_dir")
    app.run(main)
