"""The continual-learning loop: train, validate, test, select exemplars, cycle after cycle.

``run(config)`` is the whole product's main job; ``main.py`` only parses flags into a Config.
Each cycle: its data -> the method's objective -> the learner trains with early stopping ->
test (and, with --probe_fraction, every period's probe) -> exemplars -> the method's end of
cycle -> outputs. What differs between backbones is the learner's
(`ader_tf.continual.learners`), what differs between methods the method's
(`ader_tf.continual.methods`, handed each cycle's context by `MethodCycle`). Every output
is written atomically and ``state.json`` records finished cycles, so a killed run started
again with the same command continues with the first unfinished cycle and, with the same
seed, writes the same metrics.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from ader_tf.config import Config
from ader_tf.continual.artifacts import (
    RunInUseError,
    RunPaths,
    RunState,
    RunStateError,
    as_stored,
    cannot_resume,
    run_in_use_refused,
    write_config,
)
from ader_tf.continual.exemplar_memory import ExemplarMemory
from ader_tf.continual.learners import (
    RunContext,
    Training,
    TrainingDivergedError,
    make_learner,
)
from ader_tf.continual.method_cycle import MethodCycle
from ader_tf.continual.methods import make_method
from ader_tf.continual.probes import probe_cycle
from ader_tf.continual.reporting import (
    RunLog,
    cycle_row,
    peak_rss_gb,
    run_summary,
    write_cycle_scalars,
    write_run_files,
)
from ader_tf.continual.warm_start import source_folder, with_shared_first_cycle
from ader_tf.continual.workers import (
    WorkerLostError,
    agree_on,
    distribution_strategy,
    lost_workers_reported,
    worker_role,
    worker_scratch,
)
from ader_tf.data.cycles import ContinualData, CycleData
from ader_tf.data.sources import resolve_period_dir
from ader_tf.io_utils import DamagedFileError, remove_unfinished_writes

log = logging.getLogger(__name__)


class ContinualRunner:
    """Runs the cycles of one config; see ``run``.

    Args:
        config: The run's configuration.
        on_phase: Called as ``on_phase(cycle, phase)`` at points where a kill must leave a
            resumable folder (tests kill the process there): ``"training"`` after each
            training epoch, ``"selection"`` before the exemplars are chosen,
            ``"exemplars_saved"`` after they are written and before the method's end-of-cycle
            files, ``"export"`` before the SavedModel export, ``"outputs_written"`` after the
            metrics files and before state.json, ``"finished"`` after state.json (the cycle
            is done; its row is ``state.last``). None: nothing is called.
    """

    def __init__(self, config: Config,
                 on_phase: Callable[[int, str], None] | None = None) -> None:
        # --warm_start=shared: the shared first cycle is trained (in a run of its own) before
        # anything of this run exists; multi-worker runs, which must set up their strategy
        # before TensorFlow runs any op, are refused the value (`ader_tf.plugins`).
        config = with_shared_first_cycle(config)
        self.strategy = distribution_strategy(config.distribution_strategy,
                                              config.collective_timeout)
        self.role = worker_role(self.strategy)
        root = os.path.join(config.results_dir, config.run_name)
        config = as_stored(config, os.path.join(root, "config.json"))
        self.config = config
        # Only the chief writes under --results_dir; see `workers`.
        self.paths = RunPaths(root if self.role.is_chief
                              else worker_scratch(self.role, root, config.fingerprint()))
        # Refused here, before anything (TensorBoard's event file) is written, if another
        # process runs the folder now; `run` holds the lock while it runs.
        with run_in_use_refused(self.paths):
            pass
        self.on_phase = on_phase or (lambda cycle, phase: None)
        self.method = make_method(config)
        self.data = ContinualData(
            resolve_period_dir(config.dataset, config.data_dir), maxlen=config.maxlen,
            valid_portion=config.valid_portion, seed=config.random_seed,
            probe_fraction=config.probe_fraction,
        )
        self.num_cycles = self.data.num_cycles
        if config.cycles:
            self.num_cycles = min(config.cycles, self.num_cycles)
        self.state = RunState.load_or_new(self.paths.file("state.json"), config.fingerprint())
        self.runlog = RunLog(self.paths.file("Training_logs.txt"), config)
        self.writer = tf.summary.create_file_writer(self.paths.tensorboard)
        self.run_context = RunContext(
            config=config, method=self.method, strategy=self.strategy, paths=self.paths,
            data=self.data, state=self.state, runlog=self.runlog, writer=self.writer,
            on_phase=self.on_phase, exemplars=lambda: self.memory.exemplars,
        )
        self.memory = ExemplarMemory(config, self.paths, self.run_context.bar_label)
        self.learner = make_learner(self.run_context)
        self.method_cycle = MethodCycle(self.method, config, self.learner,
                                        self.run_context.exemplars, self.paths.method_state,
                                        self.strategy)

    @property
    def model(self) -> Any:
        """The learner's current model."""
        return self.learner.model

    @property
    def exemplars(self) -> Any:
        """The exemplars kept after the last finished cycle."""
        return self.memory.exemplars

    # --- resume ------------------------------------------------------------------------

    def _resume(self) -> int:
        """Restores the state after the last completed cycle; returns the next cycle."""
        last = self.state.last
        if last is None:
            return 1
        cycle = int(last["cycle"])
        log.info("resuming after cycle %d (found %s)", cycle, self.paths.file("state.json"))
        if self.method.keeps_exemplars:
            self.memory.load(cycle, int(last["max_item"]))
        if self.learner.trains:  # the kNN learner's memory is rebuilt from the exemplars
            self.learner.resume(last)
        self.method_cycle.restore(cycle)
        return cycle + 1

    # --- one cycle -----------------------------------------------------------------------

    def run_cycle(self, cycle: int) -> dict[str, Any]:
        """Trains, tests and selects exemplars for one cycle; returns its metrics row."""
        prev = self.state.last
        self.runlog.start_cycle(cycle)
        data = self.data.cycle(cycle, joint=self.method.retrains_from_scratch)
        self.runlog.data_lines(data)
        log.info("cycle %d: %d train / %d valid / %d test examples, %d items", cycle,
                 len(data.train), len(data.valid), len(data.test), data.max_item)
        data = self.learner.start_cycle(cycle, data)
        lam = self.method_cycle.set_objective(cycle, data, prev)
        training = self._train(cycle, data)

        t0 = time.time()
        with self.learner.stop_if_not_finite(cycle, "test", training.best_epoch):
            test = self.learner.test(cycle, data)
        test_seconds = time.time() - t0
        self.runlog.line(test.log_line(training.best_epoch, "test"))
        probes = (probe_cycle(self.learner, self.data, cycle, data.max_item,
                              training.best_epoch) if self.data.probe_fraction else {})

        self.on_phase(cycle, "selection")
        t0 = time.time()
        with self.learner.stop_if_not_finite(cycle, "exemplar selection", training.best_epoch):
            kept = self._end_cycle(cycle, data, prev)
        selection_seconds = time.time() - t0

        if self.config.export_saved_models and self.learner.exports:
            self.on_phase(cycle, "export")
            self.learner.export(cycle)
        row = cycle_row(cycle, data.max_item, test, training, lam, kept,
                        (training.seconds, selection_seconds, test_seconds),
                        self.runlog.current_lines())
        row.update(probes)
        write_cycle_scalars(self.writer, row, self.state.cycles)
        log.info("cycle %d: test Recall@20 %.4f MRR@20 %.4f (best epoch %d of %d)", cycle,
                 test.recall20, test.mrr20, training.best_epoch, training.epochs_run)
        return row

    def _train(self, cycle: int, data: CycleData) -> Training:
        """Trains the cycle, or with --warm_start takes cycle 1 from the run it names."""
        if not (cycle == 1 and self.config.warm_start):
            return self.learner.train(cycle, data)
        source = source_folder(self.config)
        training = self.learner.warm_start(cycle, data, source)
        self.runlog.line(f"Cycle 1 taken from {source} (best epoch {training.best_epoch} "
                         f"of {training.epochs_run}), not trained")
        log.info("cycle 1: started from the best epoch of %s instead of training", source)
        return training

    def _end_cycle(self, cycle: int, data: CycleData, prev: dict | None) -> int:
        """After testing: selects the exemplars if the method keeps them, then runs the
        method's end-of-cycle hook (e.g. EWC's Fisher information on them); returns how
        many exemplars are kept."""
        if not self.method.keeps_exemplars:
            self.method_cycle.after_cycle(cycle, data, prev)
            return 0
        origin = self.memory.select(cycle, data, self.learner.model)
        self.on_phase(cycle, "exemplars_saved")
        self.runlog.line(f"Total saved exemplar: {len(self.memory.exemplars)}")
        self.method_cycle.after_cycle(cycle, data, prev, origin=origin)
        return len(self.memory.exemplars)

    # --- the loop ----------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Runs every unfinished cycle; a worker that is not the chief then removes its
        scratch folder."""
        try:
            with run_in_use_refused(self.paths), lost_workers_reported(self.role):
                return self._run()
        finally:
            if not self.role.is_chief:
                self.writer.close()
                shutil.rmtree(self.paths.root, ignore_errors=True)

    def _run(self) -> dict[str, Any]:
        # Temporaries of writes a kill interrupted: each write is redone, or its file was
        # already complete under its own name. Nothing else writes here at this point.
        removed = remove_unfinished_writes(self.paths.root)
        if removed:
            log.info("removed %d unfinished write(s) a stopped run left in %s: %s",
                     len(removed), self.paths.root,
                     ", ".join(os.path.relpath(p, self.paths.root) for p in removed))
        write_config(self.paths.file("config.json"), self.config)
        explained = self.config.explain_dataset_defaults()
        if explained:
            log.info("%s", explained)
        self.runlog.restore(self.state.cycles)
        try:
            first = self._resume()
        except (DamagedFileError, RunStateError) as e:
            raise RunStateError(f"{e}; {cannot_resume(self.paths.root)}") from e
        if not agree_on(self.strategy, first):
            raise RunStateError(
                f"{self.role.name}: the workers would start at different cycles (this one at "
                f"{first}); every worker must see the chief's --results_dir (a shared folder)"
            )
        if first > self.num_cycles:
            # Started again after its last cycle: nothing to run, and the files (the log's
            # total time among them) stay those the run wrote; only a footer a kill after
            # the last cycle kept from being written is written (without a total time).
            log.info("every cycle of %s is finished (%d); nothing to do", self.paths.root,
                     self.num_cycles)
            summary = run_summary(self.config, self.state.cycles)
            if not self.runlog.is_finished_on_disk():
                self.runlog.finish_run(summary, None)
            return summary
        if first > 1:
            self.runlog.note(f"Resumed at cycle {first}.")
        started = time.time()
        for cycle in range(first, self.num_cycles + 1):
            cpu_start = time.process_time()
            row = self.run_cycle(cycle)
            # What the cycle cost this process: CPU time (all threads; a shared machine's
            # load stretches wall time, not this) and the peak memory so far, so that a run
            # split over several processes still adds up to its whole cost.
            row["cpu_seconds"] = round(time.process_time() - cpu_start, 1)
            row["peak_rss_gb"] = peak_rss_gb()
            self.state.cycles.append(row)
            write_run_files(self.paths, self.config, self.state.cycles)
            self.on_phase(cycle, "outputs_written")
            self.state.save(self.paths.file("state.json"))  # last: its presence = cycle done
            self.runlog.finish_cycle()
            self.on_phase(cycle, "finished")
        summary = write_run_files(self.paths, self.config, self.state.cycles)
        self.runlog.finish_run(summary, time.time() - started, first)
        return summary


def run(config: Config) -> dict[str, Any]:
    """Runs (or resumes) every cycle of ``config``; returns the summary (means over cycles).

    Raises:
        RunStateError: the results folder belongs to another config or is damaged.
        RunInUseError: another process is running the same results folder now.
        TrainingDivergedError: the loss, scores or session vectors became NaN or infinite.
    """
    return ContinualRunner(config).run()


__all__ = ["run", "ContinualRunner", "TrainingDivergedError", "RunStateError", "RunInUseError",
           "WorkerLostError"]
