"""A numpy transcription of the reference TF1 SASRec forward pass, and checkpoint helpers.

`tests/test_sasrec_reference.py` checks the transcription itself against the parity fixture,
so that the Keras model is compared with something independently verified.
"""

from __future__ import annotations

import json
import os

import numpy as np

from tests.conftest import parity_dir

PREFIX = "SASRec/"


def sasrec_fixture() -> dict:
    """Loads `sasrec/` of the parity fixtures (see `parity_dir` for when it is missing)."""
    folder = os.path.dirname(parity_dir("sasrec", "meta.json"))
    with open(os.path.join(folder, "meta.json")) as f:
        meta = json.load(f)
    return {
        "meta": meta,
        "checkpoint": os.path.join(folder, "checkpoint", "model.ckpt"),
        "inputs": np.load(os.path.join(folder, "inputs.npy")),
        "logits": np.load(os.path.join(folder, "logits.npy")),
        "rep": np.load(os.path.join(folder, "rep.npy")),
    }


def read_checkpoint(prefix: str) -> dict[str, np.ndarray]:
    """All model variables (no optimizer slots) of a reference checkpoint, by name."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if name.startswith(PREFIX) and "Adam" not in name
    }


def random_reference_weights(
    num_items: int, hidden_units: int, maxlen: int, num_blocks: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """Random weights under the reference's variable names (LN betas non-zero on purpose)."""
    rng = np.random.default_rng(seed)

    def normal(*shape: int, scale: float = 0.3) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    d = hidden_units
    weights = {
        PREFIX + "input_embeddings/lookup_table": normal(num_items + 1, d),
        PREFIX + "dec_pos/lookup_table": normal(maxlen, d),
        PREFIX + "ln/Variable": normal(d, scale=0.1),
        PREFIX + "ln/Variable_1": 1.0 + normal(d, scale=0.1),
    }
    for i in range(num_blocks):
        scope = f"{PREFIX}num_blocks_{i}/"
        for ln in ("ln", "ln_1"):
            weights[f"{scope}{ln}/Variable"] = normal(d, scale=0.1)
            weights[f"{scope}{ln}/Variable_1"] = 1.0 + normal(d, scale=0.1)
        for dense in ("dense", "dense_1", "dense_2"):
            weights[f"{scope}self_attention/{dense}/kernel"] = normal(d, d)
            weights[f"{scope}self_attention/{dense}/bias"] = normal(d, scale=0.1)
        for conv in ("conv1d", "conv1d_1"):
            weights[f"{scope}multihead_attention/{conv}/kernel"] = normal(1, d, d)
            weights[f"{scope}multihead_attention/{conv}/bias"] = normal(d, scale=0.1)
    return weights


def write_tf1_checkpoint(prefix: str, weights: dict[str, np.ndarray]) -> None:
    """Writes `weights` under their exact names, as a TF1 `tf.train.Saver` would."""
    import tensorflow as tf

    names = sorted(weights)
    tf.raw_ops.SaveV2(
        prefix=prefix,
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(weights[n]) for n in names],
    )


def _layer_norm(x: np.ndarray, w: dict[str, np.ndarray], scope: str) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-8) * w[scope + "/Variable_1"] + w[scope + "/Variable"]


def reference_forward(
    weights: dict[str, np.ndarray], item_ids: np.ndarray, num_heads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """The reference graph (ADER.py + modules.py), dropout off, in float64.

    Args:
        weights: Reference variable name -> value.
        item_ids: [B, maxlen] left-padded ids.
        num_heads: Attention heads.

    Returns:
        (logits [B, num_items] over items 1..num_items, representation [B, d]).
    """
    w = {k: np.asarray(v, np.float64) for k, v in weights.items()}
    table = w[PREFIX + "input_embeddings/lookup_table"].copy()
    table[0] = 0.0
    positions = w[PREFIX + "dec_pos/lookup_table"]
    maxlen, d = positions.shape
    batch, length = item_ids.shape
    assert length == maxlen, "the reference takes maxlen-wide inputs"
    mask = (item_ids != 0)[..., None].astype(np.float64)
    fill = -(2.0**32) + 1
    tril = np.tril(np.ones((maxlen, maxlen)))

    x = table[item_ids] * d**0.5 + positions[None]
    x = x * mask
    num_blocks = len({k.split("/")[1] for k in w if k.startswith(PREFIX + "num_blocks_")})
    for i in range(num_blocks):
        scope = f"{PREFIX}num_blocks_{i}/"
        queries = _layer_norm(x, w, scope + "ln")

        def dense(inp: np.ndarray, name: str, scope: str = scope) -> np.ndarray:
            return (
                inp @ w[f"{scope}self_attention/{name}/kernel"]
                + w[f"{scope}self_attention/{name}/bias"]
            )

        def heads(t: np.ndarray) -> np.ndarray:  # (h*B, T, d/h), as tf.concat(tf.split(..))
            return np.concatenate(np.split(t, num_heads, axis=2), axis=0)

        q, k, v = (
            heads(dense(queries, "dense")),
            heads(dense(x, "dense_1")),
            heads(dense(x, "dense_2")),
        )
        scores = q @ k.transpose(0, 2, 1) / (k.shape[-1] ** 0.5)
        key_mask = np.tile(np.sign(np.abs(x.sum(-1))), [num_heads, 1])[:, None, :]
        scores = np.where(key_mask == 0, fill, scores)
        scores = np.where(tril[None] == 0, fill, scores)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores = scores / scores.sum(-1, keepdims=True)
        query_mask = np.tile(np.sign(np.abs(queries.sum(-1))), [num_heads, 1])[:, :, None]
        out = (scores * query_mask) @ v
        out = np.concatenate(np.split(out, num_heads, axis=0), axis=2) + queries

        f = _layer_norm(out, w, scope + "ln_1")
        conv = scope + "multihead_attention/"
        h = np.maximum(f @ w[conv + "conv1d/kernel"][0] + w[conv + "conv1d/bias"], 0.0)
        h = h @ w[conv + "conv1d_1/kernel"][0] + w[conv + "conv1d_1/bias"]
        x = (h + f) * mask
    x = _layer_norm(x, w, PREFIX + "ln")
    representation = x[:, -1, :]
    return representation @ table[1:].T, representation
