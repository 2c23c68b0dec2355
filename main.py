"""Runs ADER (or a baseline) over the periods of a dataset: ``python main.py [--flags]``.

Flags keep the original's names and defaults; ``--dataset`` defaults to the built-in sample.
This file only parses flags into a Config and calls ``ader_tf.continual.runner.run``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ader_tf.config import (  # noqa: E402
    DATASETS,
    GRU4REC_LOSSES,
    GRU4REC_TRAINING,
    MODELS,
    SELECTIONS,
    STRATEGIES,
    Config,
)
from ader_tf.continual.methods import METHODS  # noqa: E402

_D = Config()
FLAGS = flags.FLAGS

flags.DEFINE_enum("dataset", _D.dataset, list(DATASETS),
                  "Dataset: DIGINETICA, YOOCHOOSE or the built-in sample (the original "
                  "defaulted to DIGINETICA).")
flags.DEFINE_enum("method", _D.method, list(METHODS),
                  "Continual method: ader (the paper's), er, finetune, dropout, ewc, joint, lwf, "
                  "agem, mas, derpp. --finetune/--dropout/--ewc/--joint/"
                  "--disable_distillation are aliases of the paper's.")
flags.DEFINE_string("save_dir", _D.save_dir, "Run name: results go to <results_dir>/"
                    "<dataset>-<save_dir>.")
# Exemplars
flags.DEFINE_integer("exemplar_size", _D.exemplar_size, "Number of exemplars kept per cycle.")
flags.DEFINE_float("lambda_", _D.lambda_, "Base weight of the exemplar loss (paper: 0.8 "
                   "DIGINETICA, 1.0 YOOCHOOSE).")
# Baselines
flags.DEFINE_boolean("finetune", _D.finetune, "Baseline: fine-tune, no exemplars, dropout 0.")
flags.DEFINE_boolean("dropout", _D.dropout, "Baseline: fine-tune with dropout.")
flags.DEFINE_boolean("ewc", _D.ewc, "Baseline: elastic weight consolidation.")
flags.DEFINE_boolean("joint", _D.joint, "Baseline: retrain from scratch on all periods so far.")
flags.DEFINE_integer("ewc_sample_num", _D.ewc_sample_num, "Exemplars used for the Fisher "
                     "information.")
# Ablations
flags.DEFINE_enum("selection", _D.selection, list(SELECTIONS), "Exemplar selection.")
flags.DEFINE_boolean("disable_distillation", _D.disable_distillation,
                     "ER: replay exemplars with their one-hot target instead of distillation.")
flags.DEFINE_boolean("equal_exemplar", _D.equal_exemplar, "Equal exemplar quota per item.")
flags.DEFINE_boolean("fix_lambda", _D.fix_lambda, "Use lambda_ as is, not the adaptive weight.")
# Training
flags.DEFINE_integer("num_epochs", _D.num_epochs, "Maximum epochs per cycle.")
flags.DEFINE_integer("batch_size", _D.batch_size, "Training batch size (current rows).")
flags.DEFINE_integer("test_batch", _D.test_batch, "Evaluation batch size.")
flags.DEFINE_float("lr", _D.lr, "Adam learning rate.")
flags.DEFINE_integer("num_blocks", _D.num_blocks, "Self-attention blocks.")
flags.DEFINE_integer("num_heads", _D.num_heads, "Attention heads.")
flags.DEFINE_integer("stop", _D.stop, "Early-stopping patience in epochs.")
flags.DEFINE_integer("random_seed", _D.random_seed, "Seed of every random choice of a run.")
flags.DEFINE_integer("hidden_units", _D.hidden_units, "Hidden size d.")
flags.DEFINE_integer("maxlen", _D.maxlen, "Input window length.")
flags.DEFINE_float("dropout_rate", _D.dropout_rate, "Dropout rate.")
flags.DEFINE_float("l2_emb", _D.l2_emb, "L2 weight on embeddings.")
# Added by ader_tf
flags.DEFINE_string("data_dir", _D.data_dir, "Folder with <DATASET>/period_*.txt (and raw/).")
flags.DEFINE_string("results_dir", _D.results_dir, "Where runs are written.")
flags.DEFINE_integer("cycles", _D.cycles, "Run only the first N cycles (0 = all).")
flags.DEFINE_integer("export_k", _D.export_k, "Top-k of the exported SavedModels.")
flags.DEFINE_boolean("export_saved_models", _D.export_saved_models,
                     "Export a SavedModel after each cycle.")
flags.DEFINE_enum("distribution_strategy", _D.distribution_strategy, list(STRATEGIES),
                  "tf.distribute strategy.")
flags.DEFINE_float("valid_portion", _D.valid_portion, "Share of prefixes for validation.")
flags.DEFINE_boolean("tied_dropout", _D.tied_dropout,
                     "Share dropout masks between layers as the original's shared op seed does "
                     "(embedding and FFN outputs; attention weights); false: independent masks.")
flags.DEFINE_boolean("progress", _D.progress, "Show progress bars.")
# Backbones
flags.DEFINE_enum("model", _D.model, list(MODELS),
                  "Backbone: sasrec (the paper's), gru4rec, stamp, stmp, or the untrained "
                  "session-kNN sknn / vsknn.")
flags.DEFINE_integer("gru4rec_layers", _D.gru4rec_layers, "GRU4Rec: stacked GRU layers.")
flags.DEFINE_enum("gru4rec_training", _D.gru4rec_training, list(GRU4REC_TRAINING),
                  "GRU4Rec: 'prefix' (the protocol's prefix examples and full softmax, works "
                  "with every method) or 'session_parallel' (GRU4Rec's own mini-batches and "
                  "sampled loss; with --finetune, --dropout or --joint).")
flags.DEFINE_enum("gru4rec_loss", _D.gru4rec_loss, list(GRU4REC_LOSSES),
                  "GRU4Rec session-parallel loss.")
flags.DEFINE_integer("gru4rec_n_sample", _D.gru4rec_n_sample,
                     "GRU4Rec session-parallel: extra negatives per step.")
flags.DEFINE_float("gru4rec_sample_alpha", _D.gru4rec_sample_alpha,
                   "GRU4Rec session-parallel: negatives drawn with popularity^alpha.")
flags.DEFINE_boolean("stamp_sigmoid", _D.stamp_sigmoid,
                     "STAMP/STMP: sigmoid on the scores before the softmax, as the paper "
                     "writes (the authors' code has none; default off).")
flags.DEFINE_integer("knn_k", _D.knn_k, "SKNN/V-SKNN: neighbours.")
flags.DEFINE_integer("knn_sample_size", _D.knn_sample_size,
                     "SKNN/V-SKNN: candidate neighbours, the most recent ones sharing an item.")
flags.DEFINE_integer("knn_window", _D.knn_window,
                     "SKNN/V-SKNN with --finetune: how many recent periods it remembers.")
flags.DEFINE_float("lwf_temperature", _D.lwf_temperature, "LwF: distillation temperature.")
flags.DEFINE_float("derpp_alpha", _D.derpp_alpha, "DER++: weight of the stored-score term.")
flags.DEFINE_float("derpp_beta", _D.derpp_beta, "DER++: weight of the exemplars' label term.")
flags.DEFINE_integer("derpp_top_k", _D.derpp_top_k, "DER++: scores stored per exemplar.")


def config_from_flags() -> Config:
    """Builds the Config from the parsed flags (same names)."""
    return Config(**{f.name: getattr(FLAGS, f.name) for f in dataclasses.fields(Config)})


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        config = config_from_flags()
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    if not config.progress:
        os.environ["TQDM_DISABLE"] = "1"
    from ader_tf.continual.runner import run
    from ader_tf.data.sources import DatasetNotFoundError

    # TensorFlow's own logger (SavedModel and checkpoint chatter), after TF set it up.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)

    try:
        summary = run(config)
    except DatasetNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    m = summary["mean"]
    print(f"{config.run_name}: mean over {summary['cycles_completed']} cycles: "
          f"Recall@20 {100 * m['recall20']:.2f}  MRR@20 {100 * m['mrr20']:.2f}  "
          f"Recall@10 {100 * m['recall10']:.2f}  MRR@10 {100 * m['mrr10']:.2f}")
    return 0


if __name__ == "__main__":
    app.run(main)
