"""Writes a copy of the original ADER whose tf.Session is opened once, for all periods.

Usage (the copy and its runs stay outside this repository; no line of the original is kept here):

    # 1. An unmodified checkout of github.com/doublemul/ADER (at 348fc21...), e.g.
    #      git --git-dir=MIRROR archive HEAD | tar -x -C /work/orig
    # 2. The patched copy, its data/DIGINETICA a symlink to the period files:
    python benchmarks/original_session_once.py --original_dir=/work/orig \\
        --out_dir=/work/orig-session-once --data_dir=/work/shared/data
    # 3. A run (Python with the `tf_keras` of the installed TensorFlow, e.g. /work/orig-venv made by
    #    `python -m venv --system-site-packages /work/orig-venv &&
    #     /work/orig-venv/bin/pip install tf_keras==<tensorflow.__version__>`):
    cd /work/orig-session-once && TF_USE_LEGACY_KERAS=1 ADER_STOP_AFTER_PERIODS=5 \\
        /work/orig-venv/bin/python -u main.py --dataset=DIGINETICA --dropout=True \\
        --save_dir=dropout-session-once-seed0 --random_seed=0
    # Its results land in /work/orig-session-once/results/DIGINETICA-<save_dir>/ (Training_logs.txt
    # and model/), as the original's do.

Why: the original's Dropout baseline is 0.4 Recall@20 above ours over DIGINETICA cycles 1-5, from
cycle 3 on (../shared/reviews/dropout-drift.md). One difference left is how dropout masks are drawn:
the original builds its graph once, with seeded dropout ops, but opens a new tf.Session per period
(main.py:206, `with tf.Session(config=config) as sess:`). A TF1 stateful random op keeps its
Philox state in its kernel, and kernels belong to a session, so every period's masks restart from
the same state: step k of each period draws the masks of step k of period 1. "Test A" of the review
runs the original with one Session for all periods, so the streams continue across periods; if its
cycles 3-5 fall to ours, the restart is the cause.

Patches, each a text substitution that must find its target exactly once (else a one-line error):

  (a) One Session (main.py). `sess = tf.Session(config=config)` is opened, and entered as the
      default session as the original's `with` does, once before `for period in periods:`; the
      per-period `with tf.Session(config=config) as sess:` becomes `if True:` so its block (and
      every line of it) is unchanged; the session is exited after the loop. What that leaves as
      the original has it, checked against its code:
        - `tf.global_variables_initializer()` runs once, in period 1 (the original's `else`
          branch: `period > 1 and not args.joint` restores instead; with --joint every period
          would re-initialise, as the original does; not used here).
        - From period 2 on, each period still creates `tf.train.Saver(max_to_keep=1)` and
          restores the previous period's best checkpoint into the session (weights, Adam slots,
          beta powers, global_step), now the same session.
        - Each period still calls `model.set_vanilla_loss()` (or `update_loss`), i.e.
          `optimizer.minimize` again, before the session block. It creates no variables: the
          same AdamOptimizer object reuses its slots and beta powers (the review counted 99
          variables before and after). Had it created one, the original's own restore would fail
          (the new Saver covers every global variable and the checkpoint lacks it), and so would
          this copy's: nothing needs initialising per period. The graph grows by the new train
          op and Saver ops after the session exists; a TF1 session extends to a grown graph on
          its next run, and its stateful kernels (the dropout ops' random_uniform, found by node
          name) are kept, so their streams go on.
  (b) The run fixes of ../shared/parity/reference_runs/README.md, none of which the Dropout path
      reaches (the earlier Dropout runs of the original ran unmodified): `dtype=object` where
      main.py builds ragged numpy arrays from exemplars (ADER, EWC); exemplar logits kept as
      float32 arrays instead of Python lists (util.py's three selections; as published, ADER
      needs more than 20 GB); `numpy` and `defaultdict` imported in data/util.py (preprocessing).
  (c) ADER_STOP_AFTER_PERIODS=N (environment) runs periods 1..N only, so a run ends, with its
      Average line over those periods, after period N's test; unset, all periods run. It prints
      (and logs) one line saying so after "Continue Learning: number of periods is ...".

The copy holds the checkout's files except results/ and model/ folders; with --data_dir, each
dataset folder of the checkout's data/ whose name is in --data_dir (DIGINETICA, YOOCHOOSE) is a
symlink to it instead (the original reads ../../data/<dataset> from results/<dataset>-<save_dir>).
A file PATCHED.txt in the copy lists the patches and the digests of the files they changed.

`--check_streams` (with TF_USE_LEGACY_KERAS=1, in the tf_keras environment; no --out_dir
needed) runs the checkout's own model to show the mechanism at a period boundary (a second
minimize, a new Saver, a restore): in a new session the first step's masks are period 1's first
step's; in the one session they are new. Seen on TF 2.21.0 / tf_keras 2.21.0:
    {"variables_unchanged": true, "one_session_continues": true, "new_session_restarts": true}

No test runs the copy (it needs the original's checkout); tests/test_original_session_once.py
covers the substitution rule, every patch against a stand-in checkout, and the refusal to write
inside the repository. The copy was smoke-run on the first 3,000 lines of DIGINETICA's period
files 0-4 (--num_epochs=3, ADER_STOP_AFTER_PERIODS=3): periods 2 and 3 restore into the one
Session and train, test, and the run ends with its Average line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORIGINAL_COMMIT = "348fc2128bceb6bb3f3d8dd25ec8bbbae831af94"
# sha256 of the files patched, at ORIGINAL_COMMIT (a mismatch is reported, not fatal: the
# substitutions decide).
ORIGINAL_SHA256 = {
    "main.py": "ecb223f7107ef32186f53a55213a77f4713fde85517ce8305922f49fdfbfd17e",
    "util.py": "35d868a02f8065a180bdfbdc02370574afa8f4c50af09da6e0b2c3f7abea24c3",
    "data/util.py": "295f23e54423023fc8ea3ae5a0e913f387af7033405d0169b15bf3379a395349",
}
TAG = "[original_session_once.py]"
STOP_VARIABLE = "ADER_STOP_AFTER_PERIODS"

# (file, label, old, new). `old` must occur exactly once in the file as the steps before left it.
SESSION_ONCE = [
    ("main.py", "open the Session once, before the period loop",
     "    for period in periods:\n\n        print('Period %d:' % period)\n",
     f"    # {TAG} stop after N periods if {STOP_VARIABLE}=N\n"
     f"    if os.environ.get('{STOP_VARIABLE}'):\n"
     f"        periods = periods[:int(os.environ['{STOP_VARIABLE}'])]\n"
     f"        print('Stopping after period %d ({STOP_VARIABLE}).' % len(periods))\n"
     f"        logs.write('Stopping after period %d ({STOP_VARIABLE}).\\n' % len(periods))\n"
     f"    # {TAG} one Session for all periods, so the dropout ops' random streams continue\n"
     "    sess = tf.Session(config=config)\n"
     "    sess.__enter__()\n"
     "    for period in periods:\n\n        print('Period %d:' % period)\n"),
    ("main.py", "no Session per period",
     "        with tf.Session(config=config) as sess:\n",
     f"        if True:  # {TAG} was: with tf.Session(config=config) as sess:\n"),
    ("main.py", "close the Session after the period loop",
     "\n    MRR_20, Recall_20, MRR_10, Recall_10 = np.array(MRR_20).mean(), \\\n",
     f"\n    sess.__exit__(None, None, None)  # {TAG} closes the one Session\n"
     "    MRR_20, Recall_20, MRR_10, Recall_10 = np.array(MRR_20).mean(), \\\n"),
]
RUN_FIXES = [
    ("main.py", "ragged exemplar array (ADER)",
     "exemplar_subseq = np.array(exemplar_data_logits)[:, 0].tolist()",
     "exemplar_subseq = np.array(exemplar_data_logits, dtype=object)[:, 0].tolist()"),
    ("main.py", "ragged exemplar array (EWC)",
     "exemplar_subseq = np.array(load_exemplars(fast_exemplar))[:, 0].tolist()",
     "exemplar_subseq = np.array(load_exemplars(fast_exemplar), dtype=object)[:, 0].tolist()"),
    ("util.py", "float32 exemplar logits (herding)",
     "                counter += 1\n"
     "        self.exemplars[item] = [[seq[i][seq[i] != 0].tolist(), logits[i].tolist()] "
     "for i in selected_ids]\n",
     "                counter += 1\n"
     "        self.exemplars[item] = [[seq[i][seq[i] != 0].tolist(), "
     "logits[i].astype(np.float32)] for i in selected_ids]\n"),
    ("util.py", "float32 exemplar logits (loss)",
     "            selected_ids = loss.argsort()[:int(min(m, seq_num))]\n"
     "            self.exemplars[item] = [[seq[i][seq[i] != 0].tolist(), logits[i].tolist()] "
     "for i in selected_ids]\n",
     "            selected_ids = loss.argsort()[:int(min(m, seq_num))]\n"
     "            self.exemplars[item] = [[seq[i][seq[i] != 0].tolist(), "
     "logits[i].astype(np.float32)] for i in selected_ids]\n"),
    ("util.py", "float32 exemplar logits (random)",
     "self.exemplars[item].append([s[s != 0].tolist(), l.tolist()])",
     "self.exemplars[item].append([s[s != 0].tolist(), l.astype(np.float32)])"),
    ("data/util.py", "imports for preprocessing",
     "import datetime\n",
     "import datetime\nimport numpy as np\nfrom collections import defaultdict\n"),
]


class PatchError(Exception):
    """A substitution's target was not found exactly once."""


def substitute(text: str, old: str, new: str, where: str) -> str:
    """`text` with its one occurrence of `old` replaced by `new`; PatchError unless exactly one."""
    count = text.count(old)
    if count != 1:
        first = old.strip().splitlines()[0] if old.strip() else repr(old)
        raise PatchError(f"{where}: expected exactly one occurrence of {first!r}, found {count}")
    return text.replace(old, new)


def inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_copy(original_dir: str, out_dir: str, data_dir: str | None) -> list[str]:
    """Copies the checkout to `out_dir`, applies the patches; returns PATCHED.txt's lines."""
    if not os.path.isfile(os.path.join(original_dir, "main.py")) or not os.path.isfile(
            os.path.join(original_dir, "ADER.py")):
        raise PatchError(f"{original_dir}: not a checkout of doublemul/ADER (no main.py, ADER.py)")
    if inside(out_dir, REPOSITORY):
        raise PatchError(f"{out_dir}: inside this repository; the original's code stays outside")
    if os.path.exists(out_dir) and os.listdir(out_dir):
        raise PatchError(f"{out_dir}: exists and is not empty")
    notes = [f"Patched by benchmarks/original_session_once.py from {os.path.abspath(original_dir)}"
             f" (expected: doublemul/ADER at {ORIGINAL_COMMIT})."]
    texts = {}
    for name, digest in ORIGINAL_SHA256.items():
        path = os.path.join(original_dir, name)
        with open(path, encoding="utf-8") as f:
            texts[name] = f.read()
        found = sha256(path)
        if found != digest:
            print(f"warning: {name} differs from the original at {ORIGINAL_COMMIT[:7]}",
                  file=sys.stderr)
        notes.append(f"original {name} sha256 {found}" + ("" if found == digest else
                                                           " (NOT the expected commit's)"))
    for name, label, old, new in SESSION_ONCE + RUN_FIXES:
        texts[name] = substitute(texts[name], old, new, f"{name} ({label})")
        notes.append(f"patch {name}: {label}")

    datasets = []
    if data_dir:
        datasets = [d for d in sorted(os.listdir(os.path.join(original_dir, "data")))
                    if os.path.isdir(os.path.join(data_dir, d))]
        if not datasets:
            raise PatchError(f"{data_dir}: holds none of the checkout's data/ folders")
    skip = {os.path.join(original_dir, "data", d) for d in datasets}

    def ignore(folder: str, names: list[str]) -> list[str]:
        top = os.path.abspath(folder) == os.path.abspath(original_dir)
        return [n for n in names if n == ".git" or (top and n in ("results", "model"))
                or os.path.join(folder, n) in skip]

    shutil.copytree(original_dir, out_dir, ignore=ignore, symlinks=True, dirs_exist_ok=True)
    for d in datasets:
        target = os.path.abspath(os.path.join(data_dir, d))
        os.symlink(target, os.path.join(out_dir, "data", d))
        notes.append(f"data/{d} -> {target}")
    for name, text in texts.items():
        path = os.path.join(out_dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        notes.append(f"patched {name} sha256 {sha256(path)}")
    with open(os.path.join(out_dir, "PATCHED.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(notes) + "\n")
    return notes


def check_streams(original_dir: str) -> dict[str, bool]:
    """Runs the checkout's own model (ADER.py, seed 0, 1,000 items, dropout 0.3) to show what
    one Session changes: after a second `set_vanilla_loss()`, a new Saver and a restore (a period
    boundary), are the dropout masks those of step 1 again? Needs TF_USE_LEGACY_KERAS=1 and
    tf_keras.

    Returns {"variables_unchanged": the second minimize creates none,
             "one_session_continues": same session, step 3 differs from steps 1 and 2,
             "new_session_restarts": a new session's first step equals step 1}.
    """
    import tempfile
    from types import SimpleNamespace

    import numpy as np
    import tensorflow.compat.v1 as tf

    tf.disable_v2_behavior()
    sys.path.insert(0, os.path.abspath(original_dir))
    from ADER import Ader  # the checkout's model, unmodified

    with tf.Graph().as_default():
        tf.set_random_seed(0)
        model = Ader(1000, SimpleNamespace(maxlen=50, hidden_units=150, num_blocks=2, num_heads=1,
                                           l2_emb=0.0, random_seed=0, dropout_rate=0.3,
                                           disable_distillation=False))
        model.set_vanilla_loss()
        ids = np.random.RandomState(0).randint(1, 1000, size=(8, 50)).astype(np.int32)
        feed = {model.input_seq: ids, model.is_training: True, model.dropout_rate: 0.3}
        before = len(tf.global_variables())
        with tempfile.TemporaryDirectory() as folder, tf.Session() as one, tf.Session() as new:
            one.run(tf.global_variables_initializer())
            step1, step2 = one.run(model.seq, feed), one.run(model.seq, feed)
            path = tf.train.Saver(max_to_keep=1).save(one, os.path.join(folder, "p1.ckpt"))
            model.set_vanilla_loss()  # the next period, as main.py does it
            saver = tf.train.Saver(max_to_keep=1)
            saver.restore(one, path)
            step3 = one.run(model.seq, feed)
            saver.restore(new, path)
            fresh = new.run(model.seq, feed)
        return {"variables_unchanged": before == len(tf.global_variables()),
                "one_session_continues": not (np.allclose(step3, step1)
                                              or np.allclose(step3, step2)),
                "new_session_restarts": bool(np.allclose(fresh, step1))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original_dir", required=True,
                        help="Unmodified checkout of doublemul/ADER (outside this repository).")
    parser.add_argument("--out_dir",
                        help="Where to write the patched copy (new or empty; outside this "
                             "repository).")
    parser.add_argument("--data_dir", default=None,
                        help="Folder holding DIGINETICA/ (and/or YOOCHOOSE/) period files; the "
                             "copy's data/<name> becomes a symlink to it. Default: the checkout's.")
    parser.add_argument("--check_streams", action="store_true",
                        help="Only run check_streams() on the checkout and print its result "
                             "(needs TF_USE_LEGACY_KERAS=1 and tf_keras); writes nothing.")
    args = parser.parse_args(argv)
    if args.check_streams:
        print(json.dumps(check_streams(args.original_dir)))
        return
    if not args.out_dir:
        parser.error("--out_dir is required")
    try:
        notes = write_copy(args.original_dir, args.out_dir, args.data_dir)
    except PatchError as error:
        raise SystemExit(f"error: {error}") from None
    print("\n".join(notes))
    print(f"Run it from {os.path.abspath(args.out_dir)} with TF_USE_LEGACY_KERAS=1 "
          f"[{STOP_VARIABLE}=N] python -u main.py ...")


if __name__ == "__main__":
    main()
