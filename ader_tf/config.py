"""Run configuration: one dataclass holding every flag of the original, ours, and the
options of the plug-ins a run uses.

Defaults equal the original's (``main.py`` of doublemul/ADER) except ``dataset``, which
defaults to the built-in sample so that ``python main.py`` works on a fresh machine. The
plug-ins (methods, learners, backbones) declare their own options in their own files; this
module knows none of them (`ader_tf.plugins.make_config` builds a Config with them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
from collections.abc import Mapping
from typing import Any

DATASETS = ("DIGINETICA", "YOOCHOOSE", "sample")
SELECTIONS = ("herding", "loss", "random", "reservoir")
STRATEGIES = ("none", "mirrored", "multi_worker")
#: --warm_start's value for a run's own first cycle, trained once and shared by the runs
#: whose first cycle trains the same (`ader_tf.continual.warm_start`).
SHARED_WARM_START = "shared"
# The methods the original's boolean flags select; a run of one of them is fingerprinted by
# those flags alone, so that runs started with the flags resume under --method and back.
FLAG_METHODS = {"finetune": "finetune", "dropout": "dropout", "ewc": "ewc", "joint": "joint"}
PAPER_METHODS = ("ader", "er", *FLAG_METHODS)

# Fields that do not change any number a run produces (where it writes, how far it goes,
# how it reports); they are left out of the fingerprint that guards resumed runs.
_NOT_FINGERPRINTED = frozenset(
    {"data_dir", "results_dir", "cycles", "export_k", "export_saved_models", "progress",
     "distribution_strategy", "collective_timeout", "test_batch", "dataset_defaults",
     "table_growth", "option_defaults"}
)
# The fields every run has fingerprinted since the first published runs, default or not. Every
# other field (one added later, and every plug-in option) enters the fingerprint only when it
# differs from its default, so adding a field never changes an existing run's fingerprint.
# Never add to this set: that would orphan every run folder and record.
_ALWAYS_FINGERPRINTED = frozenset(
    {"dataset", "save_dir", "method", "exemplar_size", "lambda_", "finetune", "dropout", "ewc",
     "joint", "ewc_sample_num", "selection", "disable_distillation", "equal_exemplar",
     "fix_lambda", "num_epochs", "batch_size", "lr", "num_blocks", "num_heads", "stop",
     "random_seed", "hidden_units", "maxlen", "dropout_rate", "l2_emb", "valid_portion",
     "tied_dropout"}
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


#: The headings of ``python main.py --help`` and the base fields under each; the plug-ins'
#: options follow under their plug-in's heading.
FIELD_GROUPS: dict[str, tuple[str, ...]] = {
    "run": ("dataset", "save_dir", "data_dir", "results_dir", "cycles", "random_seed",
            "progress", "export_saved_models", "export_k", "probe_fraction", "warm_start"),
    "method": ("method", "finetune", "dropout", "ewc", "joint", "disable_distillation",
               "lambda_", "fix_lambda", "ewc_sample_num"),
    "exemplars": ("exemplar_size", "selection", "equal_exemplar"),
    "training": ("num_epochs", "batch_size", "lr", "stop", "valid_portion", "test_batch",
                 "table_growth"),
    "model": ("model", "hidden_units", "maxlen", "num_blocks", "num_heads", "dropout_rate",
              "tied_dropout", "l2_emb"),
    "distribution": ("distribution_strategy", "collective_timeout"),
}


def field_choices(field: dataclasses.Field) -> tuple[str, ...] | None:
    """The values a field allows, or None where any value of its type goes."""
    choices = field.metadata.get("choices")
    return choices() if callable(choices) else choices


@dataclasses.dataclass(frozen=True, init=False)
class Config:
    """Everything a continual-learning run needs; each field's help is its flag's help."""

    dataset: str = _option("sample", "Dataset: DIGINETICA, YOOCHOOSE, the built-in sample (the "
                           "original defaulted to DIGINETICA), or the name of any folder under "
                           "--data_dir holding period files (e.g. made by python -m "
                           "preprocessing from your own click log).")
    save_dir: str = _option("ADER", "Run name: results go to <results_dir>/<dataset>-<save_dir>.")
    method: str = _option("ader", "Continual method, one file each in "
                          "ader_tf/continual/methods/ (ader is the paper's). --finetune, "
                          "--dropout, --ewc, --joint and --disable_distillation are aliases of "
                          "the paper's.")
    # Exemplars
    exemplar_size: int = _option(30000, "Number of exemplars kept per cycle.")
    lambda_: float = _option(None, "Base weight of the method's continual term (ADER's "
                             "distillation, ER's replay, the penalty of EWC, MAS and SI, LwF's "
                             "distillation). Default: the paper's, 1.0 for YOOCHOOSE, 0.8 "
                             "otherwise.", kind=float)
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
    progress: bool = _option(True, "Show progress bars.")
    probe_fraction: float = _option(
        0.0, "Share of each period's sessions held out as that period's probe (seeded): never "
        "trained on in any cycle, and after every cycle the model is tested on every period's "
        "probe (accuracy_matrix.csv, forgetting figures in summary.json). The next period's "
        "test set stays whole. 0 = the paper's protocol, no probe.")
    model: str = _option("sasrec", "Backbone: sasrec (the paper's), gru4rec, stamp, stmp, or the "
                         "untrained session-kNN sknn / vsknn.")
    warm_start: str = _option(
        "", "A finished run's folder (relative to --results_dir, or absolute) whose first cycle "
        "this run starts from instead of training it: its best checkpoint is copied, then cycle "
        "1's test, exemplars and the method's end of cycle run as usual. Its first cycle must "
        "have trained as this run's would (same data, seed and settings but the method's "
        "own; python -m ader_tf.tune makes such runs). 'shared': this run's first cycle, "
        "trained once in <results_dir>/first-cycle-<fingerprint> by the first run that needs "
        "it, and reused by every run (of any method) whose first cycle trains the same.")
    # Filled in, not given: the fields that took their dataset's default (see DATASET_DEFAULTS).
    dataset_defaults: tuple[str, ...] = dataclasses.field(default=(), metadata={"flag": False})
    # The plug-ins' own options (see `ader_tf.options`): those that differ from their default
    # in ``options``, every declared default in ``option_defaults``; both are filled by
    # `ader_tf.plugins.make_config`, which knows the plug-ins (this module knows none).
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict,
                                                   metadata={"flag": False})
    option_defaults: Mapping[str, Any] = dataclasses.field(
        default_factory=dict, metadata={"flag": False}, compare=False, repr=False)

    def __init__(self, **values: Any) -> None:
        """Base fields by name; any other keyword is a plug-in option (see `options`)."""
        options = dict(values.pop("options", {}))
        defaults = dict(values.pop("option_defaults", {}))
        names = {f.name for f in dataclasses.fields(self)}
        for field in dataclasses.fields(self):
            if field.name in ("options", "option_defaults"):
                continue
            if field.name in values:
                value = values.pop(field.name)
            elif field.default_factory is not dataclasses.MISSING:
                value = field.default_factory()
            else:
                value = field.default
            object.__setattr__(self, field.name, value)
        options.update(values)  # the keywords left are plug-in options
        unknown = sorted(set(options) & names)
        if unknown:
            raise ValueError(f"{unknown} are fields of Config, not plug-in options")
        # Options at their default are dropped: a run that gives one fingerprints as one that
        # does not.
        options = {k: v for k, v in options.items() if k not in defaults or v != defaults[k]}
        object.__setattr__(self, "options", types.MappingProxyType(dict(sorted(options.items()))))
        object.__setattr__(self, "option_defaults", types.MappingProxyType(defaults))
        self.__post_init__()

    def __getattr__(self, name: str) -> Any:
        # Called only for names that are not fields: a plug-in option, given or default.
        if name.startswith("__"):
            raise AttributeError(name)
        options = self.__dict__.get("options", {})
        if name in options:
            return options[name]
        defaults = self.__dict__.get("option_defaults", {})
        if name in defaults:
            return defaults[name]
        raise AttributeError(f"Config has no field or plug-in option {name!r} (plug-in options "
                             "are known to configs made by ader_tf.plugins.make_config)")

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __post_init__(self) -> None:
        _resolve_dataset_defaults(self)
        _resolve_method(self)
        validate(self)

    @property
    def run_name(self) -> str:
        """``<DATASET>-<save_dir>``, the original's results folder name."""
        return f"{self.dataset}-{self.save_dir}"

    def to_dict(self) -> dict[str, Any]:
        """Every field and every plug-in option (defaults included), flat (config.json)."""
        base = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("options", "option_defaults")}
        return {**base, **dict(sorted({**self.option_defaults, **self.options}.items()))}

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
        """Short hash of every value that changes results, to refuse resuming another run.

        The fields of `_ALWAYS_FINGERPRINTED` always count; every other field and plug-in
        option counts only where it differs from its default (`options` holds just those).
        """
        fields = {f.name: f for f in dataclasses.fields(self)}
        relevant = {
            name: getattr(self, name) for name, field in fields.items()
            if name not in _NOT_FINGERPRINTED and name != "options"
            and (name in _ALWAYS_FINGERPRINTED or getattr(self, name) != field.default)
        }
        relevant.update(self.options)
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
    """Rejects invalid values and combinations of the base fields before any work starts.

    The plug-ins' options, and which methods go with which backbone, are checked by
    `ader_tf.plugins.validate_plugins`.

    Raises:
        ValueError: with a message naming the flag(s) and the value received.
    """
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
    positive = ("exemplar_size", "num_epochs", "batch_size", "test_batch", "num_blocks",
                "num_heads", "stop", "hidden_units", "maxlen", "export_k", "ewc_sample_num")
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
    if not 0.0 <= config.probe_fraction < 1.0:
        raise ValueError(f"--probe_fraction must be in [0, 1) (0: no probe, the paper's "
                         f"protocol), got {config.probe_fraction}")
    if not config.table_growth >= 1:
        raise ValueError(f"--table_growth must be >= 1, got {config.table_growth}")
    if config.lr <= 0:
        raise ValueError(f"--lr must be positive, got {config.lr}")
    for name in ("lambda_", "l2_emb"):
        if getattr(config, name) < 0:
            raise ValueError(f"--{name} must be >= 0, got {getattr(config, name)}")
    if config.cycles < 0:
        raise ValueError(f"--cycles must be >= 0 (0 = all), got {config.cycles}")
    if not config.save_dir or any(sep in config.save_dir for sep in ("/", "\\")):
        # It names one folder, <results_dir>/<DATASET>-<save_dir>; a path would nest it oddly
        # ("DIGINETICA-runs/x"). --results_dir says where runs go.
        raise ValueError(
            f"--save_dir is a run name, not a path (put the folder in --results_dir); "
            f"got {config.save_dir!r}"
        )

