"""SavedModel export: signatures, values, loading in a process that never imports ader_tf."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ader_tf.export import export_saved_model
from ader_tf.models.recommender import SessionRecommender
from tests.conftest import REPO_ROOT
from tests.helpers import left_padded, randomize
from tests.helpers import tiny_sasrec_model as tiny_model

# One xdist worker runs this module's tests: they share one exported model.
pytestmark = pytest.mark.xdist_group("export")

# Runs in a fresh interpreter: loads the SavedModel with TensorFlow alone.
_LOADER = """
import json, sys
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
ids = tf.constant(np.load(sys.argv[2]))
top = loaded.signatures["serving_default"](item_ids=ids)
scores = loaded.signatures["scores"](item_ids=ids)["scores"]
print(json.dumps({
    "signatures": sorted(loaded.signatures.keys()),
    "top_items": top["top_items"].numpy().tolist(),
    "top_scores": top["top_scores"].numpy().tolist(),
    "top_dtype": top["top_items"].dtype.name,
    "scores": scores.numpy().tolist(),
    "ader_tf_imported": any(m.startswith("ader_tf") for m in sys.modules),
}))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_model(num_items=40, maxlen=6, dropout_rate=0.3)
    randomize(model)
    model.set_max_item(33)
    folder = tmp_path_factory.mktemp("export")
    path = export_saved_model(model, str(folder / "saved_model"), k=5)
    rng = np.random.default_rng(1)
    ids = left_padded(rng, [1, 3, 6, 2], 8, 33)  # wider than maxlen, left-padded
    ids[2, :2] = [4, 5]  # a row longer than maxlen: keeps its last 6 items
    np.save(folder / "ids.npy", ids)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run(
        [sys.executable, "-c", _LOADER, path, str(folder / "ids.npy")],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(folder),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return model, path, ids, json.loads(proc.stdout.strip().splitlines()[-1])


def test_loads_without_ader_tf_and_lists_the_signatures(exported) -> None:
    _, _, _, out = exported
    assert not out["ader_tf_imported"]
    assert out["signatures"] == ["recommend", "scores", "serving_default"]
    assert out["top_dtype"] == "int32"


def test_scores_and_top_items_match_the_model(exported) -> None:
    model, _, ids, out = exported
    expected = model.predict_logits(ids[:, -6:]).numpy()
    scores = np.asarray(out["scores"])
    assert scores.shape == (4, 33)
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    top_items = np.asarray(out["top_items"])
    assert top_items.shape == (4, 5) and top_items.min() >= 1
    np.testing.assert_array_equal(top_items, np.argsort(-expected, axis=1)[:, :5] + 1)
    np.testing.assert_allclose(
        out["top_scores"], np.sort(expected, axis=1)[:, ::-1][:, :5], atol=1e-5
    )


class DoubledScores(SessionRecommender):
    """A recommender whose scoring differs from the encoder's dot product and transform."""

    def score(self, representation, num_items=None):
        return 2.0 * super().score(representation, num_items) - 1.0


def test_export_scores_as_the_model_scores(tmp_path) -> None:
    # Whatever the model's scoring does, the export serves it: it scores through the model.
    model = DoubledScores(tiny_model(num_items=20, maxlen=4).encoder)
    randomize(model)
    model.set_max_item(15)
    import tensorflow as tf

    loaded = tf.saved_model.load(export_saved_model(model, str(tmp_path / "m"), k=4))
    ids = left_padded(np.random.default_rng(2), [1, 4, 2], 4, 15)
    expected = model.predict_logits(ids).numpy()
    served = loaded.signatures["scores"](item_ids=tf.constant(ids))["scores"].numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)
    top = loaded.signatures["serving_default"](item_ids=tf.constant(ids))
    np.testing.assert_allclose(top["top_scores"].numpy(),
                               np.sort(expected, axis=1)[:, ::-1][:, :4], atol=1e-5)


def test_recommend_without_raw_ids_takes_and_returns_the_period_files_ids(exported) -> None:
    _, path, ids, out = exported
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    as_text = np.where(ids > 0, ids.astype(str), "")
    served = loaded.signatures["recommend"](item_ids=tf.constant(as_text))
    items = [[i.decode() for i in row] for row in served["top_items"].numpy()]
    assert items == [[str(i) for i in row] for row in out["top_items"]]
    np.testing.assert_allclose(served["top_scores"].numpy(), out["top_scores"], atol=1e-6)


def test_recommend_command_line_on_an_export_without_raw_ids(exported) -> None:
    model, path, _, _ = exported
    env = {**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-m", "ader_tf.recommend", f"--model_dir={path}", "--session=1,2",
         "--k=3"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    logits = model.predict_logits(np.array([[1, 2]], np.int32)).numpy()[0]
    top = np.argsort(-logits, kind="stable")[:3]
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert [row[:2] for row in rows] == [[str(r), str(i + 1)] for r, i in enumerate(top, 1)]
    np.testing.assert_allclose([float(row[2]) for row in rows], logits[top], atol=1e-4)

    proc = subprocess.run(
        [sys.executable, "-m", "ader_tf.recommend", f"--model_dir={path}", "--session=1",
         "--k=6"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == ("error: --k must be at most 5 (the export's "
                                            "top-k), got 6")


def test_saved_model_cli_lists_signatures(exported) -> None:
    _, path, _, _ = exported
    cli = shutil.which("saved_model_cli")
    if cli is None:
        pytest.skip("saved_model_cli not on PATH")
    proc = subprocess.run([cli, "show", "--dir", path, "--all"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "signature_def['serving_default']" in proc.stdout
    assert "signature_def['scores']" in proc.stdout
    assert "item_ids" in proc.stdout and "top_items" in proc.stdout


def test_export_replaces_atomically(tmp_path) -> None:
    model = tiny_model(num_items=12, maxlen=4, num_blocks=1)
    target = str(tmp_path / "model")
    export_saved_model(model, target, k=3)
    model.set_max_item(7)
    export_saved_model(model, target, k=50)
    assert sorted(os.listdir(tmp_path)) == ["model"]  # no temporary folders left behind
    import tensorflow as tf

    loaded = tf.saved_model.load(target)
    out = loaded.signatures["serving_default"](item_ids=tf.constant([[0, 1, 2, 3]]))
    assert out["top_items"].shape == (1, 7)  # k capped at the 7 known items
    with pytest.raises(ValueError, match="k"):
        export_saved_model(model, target, k=0)


# === The shop's own ids ===

_RAW_LOADER = """
import json, sys
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
out = loaded.signatures["recommend"](item_ids=tf.constant(json.loads(sys.argv[2])))
print(json.dumps({
    "top_items": [[i.decode() for i in row] for row in out["top_items"].numpy()],
    "top_scores": out["top_scores"].numpy().tolist(),
    "ader_tf_imported": any(m.startswith("ader_tf") for m in sys.modules),
}))
"""


def test_recommend_speaks_raw_ids_in_a_fresh_process(tmp_path):
    model = tiny_model(num_items=40, maxlen=6, dropout_rate=0.0)
    randomize(model)
    model.set_max_item(33)
    raw = [f"sku-{1000 + 7 * i}" for i in range(36)]  # items 34..36 are not known yet
    path = export_saved_model(model, str(tmp_path / "saved_model"), k=5, raw_item_ids=raw)
    sessions = [
        ["sku-1007", "sku-1021", "sku-1035", "", ""],  # right-padded
        ["", "", "sku-1007", "sku-1021", "sku-1035"],  # left-padded: the same session
        ["sku-1007", "unknown", "sku-1021", "sku-1245", "sku-1035"],  # unknown and future skipped
        ["sku-1014", "", "", "", ""],
    ]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run([sys.executable, "-c", _RAW_LOADER, path, json.dumps(sessions)],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not out["ader_tf_imported"]
    # The same answer as the model on the internal ids (raw "sku-<1000+7i>" is item i + 1).
    internal = np.array([[0, 0, 0, 2, 4, 6], [0, 0, 0, 0, 0, 3]], np.int32)
    logits = model.predict_logits(internal).numpy()
    for row, expected in ((0, 0), (1, 0), (2, 0), (3, 1)):
        top = np.argsort(-logits[expected], kind="stable")[:5]
        assert out["top_items"][row] == [raw[i] for i in top]
        np.testing.assert_allclose(out["top_scores"][row], logits[expected][top], rtol=1e-5)

    from ader_tf.recommend import recommend

    ranked = recommend(path, ["sku-1007", "sku-1021", "sku-1035"], k=3)
    assert [item for item, _ in ranked] == out["top_items"][0][:3]
    with pytest.raises(ValueError, match="at most 5"):
        recommend(path, ["sku-1007"], k=6)


def test_recommend_needs_raw_ids_for_every_known_item(tmp_path):
    model = tiny_model(num_items=40, maxlen=6)
    model.set_max_item(33)
    with pytest.raises(ValueError, match="items 1..33"):
        export_saved_model(model, str(tmp_path / "m"), raw_item_ids=["a"] * 10)
