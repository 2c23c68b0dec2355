"""Config validation and flag parsing of main.py."""

import subprocess
import sys

import pytest

from ader_tf.plugins import make_config
from tests.conftest import REPO_ROOT


def test_defaults_are_the_originals():
    c = make_config()
    assert (c.exemplar_size, c.lambda_, c.num_epochs, c.batch_size, c.test_batch) == (
        30000, 0.8, 100, 256, 64)
    assert (c.lr, c.num_blocks, c.num_heads, c.stop, c.hidden_units, c.maxlen) == (
        5e-4, 2, 1, 5, 150, 50)
    assert (c.dropout_rate, c.l2_emb, c.selection, c.save_dir) == (0.3, 0.0, "herding", "ADER")
    assert c.dataset == "sample"  # the one deliberate change
    assert c.method == "ader"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"finetune": True, "ewc": True}, "at most one baseline"),
        ({"exemplar_size": 0}, "exemplar_size must be positive"),
        ({"dataset": "shop/clicks"}, "--dataset names a folder under --data_dir"),
        ({"selection": "best"}, "--selection must be one of"),
        ({"joint": True, "disable_distillation": True}, "has no effect"),
        ({"ewc": True, "disable_distillation": True}, "has no effect"),
        ({"hidden_units": 10, "num_heads": 3}, "divisible"),
        ({"dropout_rate": 1.0}, "dropout_rate"),
        ({"table_growth": 0.5}, "--table_growth must be >= 1"),
        ({"probe_fraction": 1.0}, r"--probe_fraction must be in \[0, 1\) .*got 1.0"),
        ({"probe_fraction": -0.1}, r"--probe_fraction must be in \[0, 1\)"),
        ({"save_dir": "/tmp/run"}, "--save_dir is a run name, not a path"),
        ({"save_dir": "runs\\x"}, "--save_dir is a run name, not a path"),
        ({"save_dir": ""}, "--save_dir is a run name, not a path"),
        ({"model": "bert4rec"}, "--model must be one of"),
        ({"model": "sknn"}, "'ader' method does not apply"),
        ({"model": "vsknn", "ewc": True}, "'ewc' method does not apply"),
        ({"model": "sknn", "disable_distillation": True}, "'er' method does not apply"),
        ({"model": "sknn", "dropout": True}, "'dropout' method does not apply"),
        ({"model": "stamp", "gru4rec_layers": 2}, "only applies to --model=gru4rec"),
        ({"model": "gru4rec", "knn_k": 50, "finetune": True}, "only applies to --model=sknn"),
        ({"stamp_sigmoid": True}, "only applies to --model=stamp/stmp"),
        ({"model": "gru4rec", "gru4rec_training": "session_parallel"}, "cannot replay"),
        ({"model": "gru4rec", "gru4rec_training": "bptt"}, "--gru4rec_training must be"),
        ({"model": "gru4rec", "gru4rec_loss": "hinge"}, "--gru4rec_loss must be"),
        ({"model": "sknn", "joint": True, "knn_k": 0}, "--knn_k must be positive"),
        ({"length_groups": 0}, "--length_groups must be positive"),
        ({"model": "gru4rec", "length_groups": 1}, "only applies to --model=sasrec"),
    ],
)
def test_invalid_combinations_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_config(**kwargs)


def test_methods_from_flags():
    assert make_config(disable_distillation=True).method == "er"
    assert make_config(joint=True).method == "joint"
    assert make_config(ewc=True, selection="random").method == "ewc"


def test_backbone_methods_that_apply_are_accepted():
    assert make_config(model="sknn", finetune=True, knn_window=2).method == "finetune"
    assert make_config(model="vsknn", disable_distillation=True, selection="random").method == "er"
    assert make_config(model="gru4rec", gru4rec_training="session_parallel", joint=True).joint
    assert make_config(model="stmp", ewc=True, stamp_sigmoid=True).method == "ewc"


def test_fingerprint_of_a_default_backbone_is_unchanged():
    """Runs started before --model existed keep resuming: default backbone fields are omitted."""
    assert make_config().fingerprint() == make_config(model="sasrec", knn_k=100).fingerprint()
    assert make_config().fingerprint() != make_config(model="gru4rec").fingerprint()
    # Runs started before --length_groups existed resume; other groups are a different run.
    assert make_config().fingerprint() == make_config(length_groups=4).fingerprint()
    assert make_config().fingerprint() != make_config(length_groups=1).fingerprint()


def test_fingerprint_ignores_where_results_go():
    # Spare table rows change no number either (see test_growing_runs).
    a, b = make_config(), make_config(results_dir="elsewhere", cycles=3, table_growth=1.0)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != make_config(random_seed=1).fingerprint()


def test_a_probe_is_another_run_and_no_probe_the_same_run():
    """--probe_fraction=0 (the default) fingerprints as a run from before the flag existed."""
    assert make_config(probe_fraction=0.0).fingerprint() == make_config().fingerprint()
    assert make_config(probe_fraction=0.1).fingerprint() != make_config().fingerprint()


def _main(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_main_rejects_bad_flags_before_any_work(tmp_path):
    result = _main("--finetune", "--dropout", f"--results_dir={tmp_path}")
    assert result.returncode != 0
    assert "at most one baseline" in result.stderr
    assert not list(tmp_path.iterdir())  # nothing was written

    result = _main("--ewc=false", "--finetune=true", "--exemplar_size=-1")
    assert result.returncode != 0 and "exemplar_size must be positive" in result.stderr


def test_booleans_are_real_booleans():
    code = ("import main; main.FLAGS(['main.py', '--ewc=false', '--finetune=true', '--nojoint',"
            " '--cycles=3']); c = main.config_from_flags(); print(c.ewc, c.finetune, c.joint,"
            " c.cycles, c.dataset)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120, check=True)
    assert result.stdout.split() == ["False", "True", "False", "3", "sample"]


def test_missing_real_data_names_where_to_put_it(tmp_path):
    result = _main("--dataset=YOOCHOOSE", f"--data_dir={tmp_path}",
                   f"--results_dir={tmp_path / 'r'}")
    assert result.returncode == 2
    assert "yoochoose-clicks.dat" in result.stderr
    assert str(tmp_path / "YOOCHOOSE") in result.stderr


def test_a_folder_without_period_files_says_how_to_make_them(tmp_path):
    result = _main("--dataset=SHOP", f"--data_dir={tmp_path}", f"--results_dir={tmp_path / 'r'}")
    assert result.returncode == 2
    assert "python -m preprocessing" in result.stderr
    assert str(tmp_path / "SHOP") in result.stderr


def test_yoochoose_takes_the_papers_setting_unless_given():
    yoochoose = make_config(dataset="YOOCHOOSE")
    assert (yoochoose.lambda_, yoochoose.batch_size) == (1.0, 512)
    assert yoochoose.dataset_defaults == ("lambda_", "batch_size")
    assert "the paper's setting for YOOCHOOSE" in yoochoose.explain_dataset_defaults()
    given = make_config(dataset="YOOCHOOSE", lambda_=0.5)
    assert (given.lambda_, given.batch_size, given.dataset_defaults) == (0.5, 512, ("batch_size",))
    diginetica = make_config(dataset="DIGINETICA")
    assert (diginetica.lambda_, diginetica.batch_size) == (0.8, 256)
    # Values from defaults or from flags give the same run.
    assert diginetica.fingerprint() == make_config(dataset="DIGINETICA", lambda_=0.8,
                                              batch_size=256).fingerprint()
    assert yoochoose.fingerprint() == make_config(dataset="YOOCHOOSE", lambda_=1.0,
                                             batch_size=512).fingerprint()


def test_main_flags_leave_dataset_defaults_to_the_config():
    code = ("import main; main.FLAGS(['main.py', '--dataset=YOOCHOOSE', '--batch_size=128']);"
            " c = main.config_from_flags(); print(c.lambda_, c.batch_size, *c.dataset_defaults)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120, check=True)
    assert result.stdout.split() == ["1.0", "128", "lambda_"]
