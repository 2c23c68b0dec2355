"""Run configuration: one dataclass holding every flag of the original, plus ours.

Defaults equal the original's (``main.py`` of doublemul/ADER) except ``dataset``, which
defaults to the built-in sample so that ``python main.py`` works on a fresh machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

DATASETS = ("DIGINETICA", "YOOCHOOSE", "sample")
SELECTIONS = ("herding", "loss", "random", "reservoir")
STRATEGIES = ("none", "mirrored", "multi_worker")
NEURAL_MODELS = ("sasrec", "gru4rec", "stamp", "stmp")
KNN_MODELS = ("sknn", "vsknn")
MODELS = NEURAL_MODELS + KNN_MODELS
GRU4REC_TRAINING = ("prefix", "session_parallel")
GRU4REC_LOSSES = ("bpr", "top1", "bpr_max", "top1_max", "cross_entropy")
# The methods the original's boolean flags select; a run of one of them is fingerprinted by
# those flags alone, so that runs started with the flags resume under --method and back.
FLAG_METHODS = {"finetune": "finetune", "dropout": "dropout", "ewc": "ewc", "joint": "joint"}
PAPER_METHODS = ("ader", "er", *FLAG_METHODS)

# Fields that do not change any number a run produces (where it writes, how far it goes,
# how it reports); they are left out of the fingerprint that guards resumed runs.
_NOT_FINGERPRINTED = frozenset(
    {"data_dir", "results_dir", "cycles", "export_k", "export_saved_models", "progress",
     "distribution_strategy", "collective_timeout", "test_batch", "dataset_defaults",
     "table_growth"}
)
# Fields added after runs were published: left out of the fingerprint while at their default,
# so a run started before they existed still resumes.
_FINGERPRINTED_IF_CHANGED = frozenset(
    {"model", "gru4rec_layers", "gru4rec_training", "gru4rec_loss", "gru4rec_n_sample",
     "gru4rec_sample_alpha", "stamp_sigmoid", "knn_k", "knn_sample_size", "knn_window",
     "lwf_temperature", "derpp_alpha", "derpp_beta", "derpp_top_k", "sacaisr_alpha",
     "sacaisr_temperature", "sacaisr_top_k", "sacaisr_max_p", "sacaisr_ema_beta",
     "sacaisr_decay", "length_groups"}
)


def _option(default: Any, help: str, choices: Any = None, kind: type | None = None) -> Any:
    """A config field with its command-line help (and allowed values), declared once here.

    ``main.py`` makes one flag per field from this metadata. ``choices`` is a tuple or a
    function returning one (for lists known only once other modules are imported); ``kind``
    is the flag's type where the default (None) does not tell it.
    """
    kind = kind or type(default)
    return dataclasses.field(
        default=default, metadata={"help": help, "choices": choices, "kind": kind}
    )


# The paper's settings that differ by dataset (its README's command lines): a run takes them
# from its dataset unless the flag is given.
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "YOOCHOOSE": {"lambda_": 1.0, "batch_size": 512},
}
GENERAL_DEFAULTS: dict[str, Any] = {"lambda_": 0.8, "batch_size": 256}


def _method_names() -> tuple[str, ...]:
    from ader_tf.continual.methods import METHODS

    return tuple(METHODS)


def field_choices(field: dataclasses.Field) -> tuple[str, ...] | None:
    """The values a field allows, or None where any value of its type goes."""
    choices = field.metadata.get("choices")
    return choices() if callable(choices) else choices


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a continual-learning run needs; each field's help is its flag's help."""

    dataset: str = _option("sample", "Dataset: DIGINETICA, YOOCHOOSE, the built-in sample (the "
                           "original defaulted to DIGINETICA), or the name of any folder under "
                           "--data_dir holding period files (e.g. made by python -m "
                           "preprocessing from your own click log).")
    save_dir: str = _option("ADER", "Run name: results go to <results_dir>/<dataset>-<save_dir>.")
    method: str = _option("ader", "Continual method (see ader_tf/continual/methods/): ader (the "
                          "paper's), er, finetune, dropout, ewc, joint, lwf, agem, mas, derpp, "
                          "sacaisr. "
                          "--finetune, --dropout, --ewc, --joint and --disable_distillation are "
                          "aliases of the paper's.", _method_names)
    # Exemplars
    exemplar_size: int = _option(30000, "Number of exemplars kept per cycle.")
    lambda_: float = _option(None, "Base weight of the continual term (ADER's distillation, ER's "
                             "replay, EWC's and MAS's penalty, LwF's distillation). Default: the "
                             "paper's, 1.0 for YOOCHOOSE, 0.8 otherwise.", kind=float)
    # Baselines
    finetune: bool = _option(False, "Baseline: fine-tune, no exemplars, dropout 0 "
                             "(= --method=finetune).")
    dropout: bool = _option(False, "Baseline: fine-tune with dropout (= --method=dropout).")
    ewc: bool = _option(False, "Baseline: elastic weight consolidation (= --method=ewc).")
    joint: bool = _option(False, "Baseline: retrain from scratch on all periods so far "
                          "(= --method=joint).")
    ewc_sample_num: int = _option(1000, "Examples the importance is measured on (EWC: "
                                  "exemplars; MAS: the cycle's training examples).")
    # Ablations
    selection: str = _option("herding", "Exemplar selection: per-item quotas filled by herding, "
                             "loss or random, or reservoir sampling over the whole stream.",
                             SELECTIONS)
    disable_distillation: bool = _option(False, "ER: replay exemplars with their one-hot target "
                                         "instead of distillation (= --method=er).")
    equal_exemplar: bool = _option(False, "Equal exemplar quota per item.")
    fix_lambda: bool = _option(False, "Use lambda_ as is, not the adaptive weight.")
    # Training
    num_epochs: int = _option(100, "Maximum epochs per cycle.")
    batch_size: int = _option(None, "Training batch size (current rows). Default: the paper's, "
                              "512 for YOOCHOOSE, 256 otherwise.", kind=int)
    test_batch: int = _option(64, "Evaluation batch size.")
    lr: float = _option(5e-4, "Adam learning rate.")
    num_blocks: int = _option(2, "Self-attention blocks.")
    num_heads: int = _option(1, "Attention heads.")
    stop: int = _option(5, "Early-stopping patience in epochs.")
    random_seed: int = _option(0, "Seed of every random choice of a run.")
    hidden_units: int = _option(150, "Hidden size d.")
    maxlen: int = _option(50, "Input window length.")
    dropout_rate: float = _option(0.3, "Dropout rate.")
    l2_emb: float = _option(0.0, "L2 weight on embeddings.")
    # Added by ader_tf
    data_dir: str = _option("data", "Folder with <DATASET>/period_*.txt (and raw/).")
    results_dir: str = _option("results", "Where runs are written.")
    cycles: int = _option(0, "Run only the first N cycles (0 = all).")
    export_k: int = _option(20, "Top-k of the exported SavedModels.")
    export_saved_models: bool = _option(True, "Export a SavedModel after each cycle.")
    table_growth: float = _option(
        2.0, "When a cycle brings more items than the item tables hold, they are rebuilt this "
        "many times larger (at least as large as needed; on DIGINETICA and YOOCHOOSE never "
        "larger than the original's table). Spare rows change no result, and each rebuild "
        "retraces the training step, which keeps memory. 1 = exactly the items seen. "
        "With --l2_emb > 0 tables are always exact (the penalty would reach spare rows).")
    distribution_strategy: str = _option("none", "tf.distribute strategy (multi_worker: one "
                                         "process per worker, each with its TF_CONFIG).",
                                         STRATEGIES)
    collective_timeout: float = _option(600.0, "multi_worker: seconds a collective op waits for "
                                        "the other workers before the run stops with an error "
                                        "(0: wait forever).")
    valid_portion: float = _option(0.1, "Share of prefixes for validation.")
    # The original's dropouts share one op seed, so their masks coincide at every step
    # (see SASRecEncoder); False draws independent masks.
    tied_dropout: bool = _option(True, "Share dropout masks between layers as the original's "
                                 "shared op seed does (embedding and FFN outputs; attention "
                                 "weights); false: independent masks.")
    # Only speed should depend on it: the groups' rows are encoded apart and put back in order,
    # which changes float32 summation order and nothing else (tests/test_sasrec.py checks).
    length_groups: int = _option(4, "SASRec: encode each batch as this many groups of rows of "
                                 "similar length, each trimmed of its own leading padding "
                                 "(faster on long-tailed sessions; 1: one group).")
    progress: bool = _option(True, "Show progress bars.")
    # Backbones: which model, and the settings only some models read
    model: str = _option("sasrec", "Backbone: sasrec (the paper's), gru4rec, stamp, stmp, or the "
                         "untrained session-kNN sknn / vsknn.", MODELS)
    gru4rec_layers: int = _option(1, "GRU4Rec: stacked GRU layers.")
    gru4rec_training: str = _option(
        "prefix", "GRU4Rec: 'prefix' (the protocol's prefix examples and full softmax, works "
        "with every method) or 'session_parallel' (GRU4Rec's own mini-batches and sampled "
        "loss; with a method trained on cross-entropy alone).", GRU4REC_TRAINING)
    gru4rec_loss: str = _option("bpr_max", "GRU4Rec session-parallel loss.", GRU4REC_LOSSES)
    gru4rec_n_sample: int = _option(2048, "GRU4Rec session-parallel: extra negatives per step.")
    gru4rec_sample_alpha: float = _option(0.75, "GRU4Rec session-parallel: negatives drawn with "
                                          "popularity^alpha.")
    stamp_sigmoid: bool = _option(False, "STAMP/STMP: sigmoid on the scores before the softmax, "
                                  "as the paper writes (the authors' code has none).")
    knn_k: int = _option(100, "SKNN/V-SKNN: neighbours.")
    knn_sample_size: int = _option(500, "SKNN/V-SKNN: candidate neighbours, the most recent "
                                   "ones sharing an item.")
    knn_window: int = _option(1, "SKNN/V-SKNN with --finetune: how many recent periods it "
                              "remembers.")
    # Methods beyond the paper
    lwf_temperature: float = _option(2.0, "LwF: distillation temperature (the paper's T = 2).")
    derpp_alpha: float = _option(0.5, "DER++: weight of the stored-score term.")
    derpp_beta: float = _option(0.5, "DER++: weight of the exemplars' label term.")
    derpp_top_k: int = _option(100, "DER++: scores stored per exemplar (the k-th bounds the "
                               "rest).")
    # SA-CAISR's defaults are those of the authors' code (Togmm/SA-CAISR), whose default
    # dataset is DIGINETICA; the temperature is a constant there.
    sacaisr_alpha: float = _option(4.0, "SA-CAISR: weight of the InfoNCE consistency term.")
    sacaisr_temperature: float = _option(0.07, "SA-CAISR: InfoNCE temperature.")
    sacaisr_top_k: int = _option(128, "SA-CAISR: hardest in-batch negatives per row.")
    sacaisr_max_p: float = _option(0.8, "SA-CAISR: drop probability of the old model's most "
                                   "conflicting weight of each tensor, in [0, 1).")
    sacaisr_ema_beta: float = _option(0.63, "SA-CAISR: share of the history kept when the old "
                                      "model's Fisher information is updated each batch.")
    sacaisr_decay: float = _option(0.9, "SA-CAISR: factor on the smoothed Fisher information "
                                   "after each epoch.")
    # Filled in, not given: the fields that took their dataset's default (see DATASET_DEFAULTS).
    dataset_defaults: tuple[str, ...] = dataclasses.field(default=(), metadata={"flag": False})

    def __post_init__(self) -> None:
        _resolve_dataset_defaults(self)
        _resolve_method(self)
        validate(self)

    @property
    def run_name(self) -> str:
        """``<DATASET>-<save_dir>``, the original's results folder name."""
        return f"{self.dataset}-{self.save_dir}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def explain_dataset_defaults(self) -> str | None:
        """A log line saying which values came from the dataset's defaults, or None."""
        if not self.dataset_defaults:
            return None
        values = " ".join(f"--{n}={getattr(self, n)}" for n in self.dataset_defaults)
        source = "the paper's setting for " + self.dataset if self.dataset in DATASET_DEFAULTS \
            else "the paper's default"
        return f"{values}: {source} (give the flags to change them)"

    def with_stored_defaults(self, stored: dict[str, Any]) -> Config:
        """This config with the dataset-defaulted fields taken from a stored run's config.

        A run started before a dataset's defaults changed keeps the values it started with
        when it is resumed with the same command (the stored config wins).
        """
        if not self.dataset_defaults:
            return self
        kept = {n: stored[n] for n in self.dataset_defaults if stored.get(n) is not None}
        return dataclasses.replace(self, dataset_defaults=(), **kept) if kept else self

    def fingerprint(self) -> str:
        """Short hash of every field that changes results, to refuse resuming another run."""
        defaults = Config.__dataclass_fields__
        relevant = {
            k: v for k, v in self.to_dict().items()
            if k not in _NOT_FINGERPRINTED
            and not (k in _FINGERPRINTED_IF_CHANGED and v == defaults[k].default)
        }
        if self.method in PAPER_METHODS:  # the original's flags say it, as before --method
            del relevant["method"]
        blob = json.dumps(relevant, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _resolve_dataset_defaults(config: Config) -> None:
    """Sets the fields left at None to their dataset's defaults and records which they were."""
    defaults = {**GENERAL_DEFAULTS, **DATASET_DEFAULTS.get(config.dataset, {})}
    filled = [name for name in defaults if getattr(config, name) is None]
    # A frozen dataclass sets its normalised fields through object.__setattr__.
    for name in filled:
        object.__setattr__(config, name, defaults[name])
    if filled:
        object.__setattr__(config, "dataset_defaults", tuple(filled))


def _resolve_method(config: Config) -> None:
    """Makes ``method`` and the original's method flags agree (each names the other).

    ``--finetune`` alone gives method "finetune"; ``--method=finetune`` alone sets
    ``finetune``; likewise ER and ``--disable_distillation``.

    Raises:
        ValueError: when the flags name different methods.
    """
    flagged = [name for name in FLAG_METHODS if getattr(config, name)]
    if len(flagged) > 1:
        raise ValueError(f"choose at most one baseline; got --{' --'.join(flagged)}")
    implied = flagged[0] if flagged else None
    if implied is None and config.disable_distillation and config.method in ("ader", "er"):
        implied = "er"
    if implied is not None and config.method not in ("ader", implied):
        raise ValueError(
            f"--method={config.method} and --{implied if flagged else 'disable_distillation'} "
            "name different methods; give one of them"
        )
    method = implied or config.method
    # A frozen dataclass sets its normalised fields through object.__setattr__.
    object.__setattr__(config, "method", method)
    if method in FLAG_METHODS:
        object.__setattr__(config, method, True)
    if method == "er":
        object.__setattr__(config, "disable_distillation", True)


def validate(config: Config) -> None:
    """Rejects invalid values and combinations before any work starts.

    Raises:
        ValueError: with a message naming the flag(s) and the value received.
    """
    # Imported here: the methods import objectives and TensorFlow, which reading a Config
    # (e.g. in benchmarks/reproduce.py) does not need until it is validated.
    from ader_tf.continual.methods import METHODS, method_class

    if not config.dataset or any(sep in config.dataset for sep in ("/", "\\")):
        raise ValueError(
            f"--dataset names a folder under --data_dir (or one of {DATASETS}), got "
            f"{config.dataset!r}"
        )
    if config.selection not in SELECTIONS:
        raise ValueError(f"--selection must be one of {SELECTIONS}, got {config.selection!r}")
    if config.distribution_strategy not in STRATEGIES:
        raise ValueError(
            f"--distribution_strategy must be one of {STRATEGIES}, "
            f"got {config.distribution_strategy!r}"
        )
    if not config.collective_timeout >= 0:
        raise ValueError(f"--collective_timeout must be >= 0 seconds, got "
                         f"{config.collective_timeout}")
    method = method_class(config.method)
    method.check_config(config)
    for other in METHODS.values():
        changed = _changed(config, tuple(o for o in other.options if o not in method.options))
        if changed:
            raise ValueError(
                f"--{' --'.join(changed)} only applies to --method={other.name}, "
                f"not --method={config.method}"
            )
    if config.lwf_temperature <= 0 or config.derpp_alpha < 0 or config.derpp_beta < 0:
        raise ValueError(
            "--lwf_temperature must be positive and --derpp_alpha, --derpp_beta non-negative, "
            f"got {config.lwf_temperature}, {config.derpp_alpha}, {config.derpp_beta}"
        )
    positive = ("exemplar_size", "num_epochs", "batch_size", "test_batch", "num_blocks",
                "num_heads", "stop", "hidden_units", "maxlen", "export_k", "ewc_sample_num",
                "derpp_top_k", "length_groups")
    for name in positive:
        if getattr(config, name) <= 0:
            raise ValueError(f"--{name} must be positive, got {getattr(config, name)}")
    if config.hidden_units % config.num_heads:
        raise ValueError(
            f"--hidden_units ({config.hidden_units}) must be divisible by --num_heads "
            f"({config.num_heads})"
        )
    if not 0.0 <= config.dropout_rate < 1.0:
        raise ValueError(f"--dropout_rate must be in [0, 1), got {config.dropout_rate}")
    if not config.table_growth >= 1:
        raise ValueError(f"--table_growth must be >= 1, got {config.table_growth}")
    if config.lr <= 0 or config.lambda_ < 0 or config.l2_emb < 0:
        raise ValueError("--lr must be positive and --lambda_, --l2_emb non-negative")
    if config.cycles < 0:
        raise ValueError(f"--cycles must be >= 0 (0 = all), got {config.cycles}")
    if not config.save_dir or any(sep in config.save_dir for sep in ("/", "\\")):
        # It names one folder, <results_dir>/<DATASET>-<save_dir>; a path would nest it oddly
        # ("DIGINETICA-runs/x"). --results_dir says where runs go.
        raise ValueError(
            f"--save_dir is a run name, not a path (put the folder in --results_dir); "
            f"got {config.save_dir!r}"
        )
    validate_model(config)


def _changed(config: Config, names: tuple[str, ...]) -> list[str]:
    """The names among ``names`` whose value differs from the default."""
    fields = Config.__dataclass_fields__
    return [n for n in names if getattr(config, n) != fields[n].default]


def validate_model(config: Config) -> None:
    """Rejects backbone settings that do not apply to ``--model``.

    Raises:
        ValueError: naming the flag, the model and what to use instead.
    """
    if config.model not in MODELS:
        raise ValueError(f"--model must be one of {MODELS}, got {config.model!r}")
    gru4rec = ("gru4rec_layers", "gru4rec_training", "gru4rec_loss", "gru4rec_n_sample",
               "gru4rec_sample_alpha")
    for names, models in ((gru4rec, ("gru4rec",)), (("stamp_sigmoid",), ("stamp", "stmp")),
                          (("length_groups",), ("sasrec",)),
                          (("knn_k", "knn_sample_size", "knn_window"), KNN_MODELS)):
        changed = _changed(config, names)
        if changed and config.model not in models:
            raise ValueError(
                f"--{' --'.join(changed)} only applies to --model={'/'.join(models)}, "
                f"not --model={config.model}"
            )
    if config.gru4rec_training not in GRU4REC_TRAINING:
        raise ValueError(
            f"--gru4rec_training must be one of {GRU4REC_TRAINING}, got {config.gru4rec_training!r}"
        )
    if config.gru4rec_loss not in GRU4REC_LOSSES:
        raise ValueError(
            f"--gru4rec_loss must be one of {GRU4REC_LOSSES}, got {config.gru4rec_loss!r}"
        )
    for name in ("gru4rec_layers", "knn_k", "knn_sample_size", "knn_window"):
        if getattr(config, name) <= 0:
            raise ValueError(f"--{name} must be positive, got {getattr(config, name)}")
    if config.gru4rec_n_sample < 0 or config.gru4rec_sample_alpha < 0:
        raise ValueError(
            "--gru4rec_n_sample and --gru4rec_sample_alpha must be >= 0, got "
            f"{config.gru4rec_n_sample} and {config.gru4rec_sample_alpha}"
        )
    if config.gru4rec_training == "session_parallel":
        from ader_tf.continual.methods import METHODS, method_class

        if not method_class(config.method).plain_loss:
            plain = ", ".join(name for name, m in METHODS.items() if m.plain_loss)
            raise ValueError(
                "--gru4rec_training=session_parallel trains on sampled scores of whole "
                "sessions, so it cannot replay exemplars or add a loss term: use it with a "
                f"method trained on cross-entropy alone ({plain}); got the "
                f"{config.method!r} method"
            )
        if config.distribution_strategy != "none":
            raise ValueError("--gru4rec_training=session_parallel runs on one device only")
    if config.model in KNN_MODELS:
        knn_method = config.method in ("finetune", "joint") or (
            config.method == "er" and config.selection == "random" and not config.fix_lambda
        )
        if not knn_method:
            raise ValueError(
                f"--model={config.model} is not trained, so the {config.method!r} method does "
                "not apply (no distillation, dropout, EWC penalty or model-based selection). "
                "Choose its memory instead: --finetune (the last --knn_window periods), "
                "--joint (all past periods) or --disable_distillation --selection=random "
                "(the exemplars' sessions plus the last period)"
            )
