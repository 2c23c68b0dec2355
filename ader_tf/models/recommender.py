"""Next-item recommender around a session encoder, with ADER's continual-learning losses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras
import tensorflow as tf

if TYPE_CHECKING:
    from ader_tf.continual.ewc import EWCState

MODES = ("plain", "distill", "replay", "ewc")

_INT_MATRIX = tf.TensorSpec([None, None], tf.int32, name="item_ids")
_INT_VECTOR = tf.TensorSpec([None], tf.int32, name="targets")


@keras.saving.register_keras_serializable(package="ader_tf")
class FusedAdam(keras.optimizers.Adam):
    """Keras Adam whose update runs TensorFlow's fused `ApplyAdam` kernel (TF1's optimizer).

    Same formula, variables and checkpoints as `keras.optimizers.Adam`; one multi-threaded pass
    over each variable instead of about ten element-wise ops, which matters for the dense
    update of a 43k x 150 item table at every step.
    """

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        handle = getattr(variable, "handle", None)
        if self.amsgrad or handle is None:
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=handle,
            m=self._momentums[index].value.handle,
            v=self._velocities[index].value.handle,
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), step),
            lr=tf.cast(learning_rate, dtype),
            beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(tf.convert_to_tensor(gradient), dtype),
        )
        return None


def make_optimizer(learning_rate: float = 5e-4) -> keras.optimizers.Adam:
    """Adam with the reference's (TF1 default) settings; Keras' default epsilon is 1e-7."""
    return FusedAdam(learning_rate=learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8)


def _split_features(inputs: Any) -> tuple[tf.Tensor, tf.Tensor]:
    """Returns (item_ids int32 [B, L], is_exemplar float32 [B]) from a features dict or ids."""
    if isinstance(inputs, dict):
        item_ids = tf.cast(inputs["item_ids"], tf.int32)
        is_exemplar = inputs.get("is_exemplar")
    else:
        item_ids, is_exemplar = tf.cast(inputs, tf.int32), None
    if is_exemplar is None:
        is_exemplar = tf.zeros(tf.shape(item_ids)[:1], tf.float32)
    return item_ids, tf.cast(is_exemplar, tf.float32)


def dense_gradient(gradient: Any) -> Any:
    """The gradient as a dense tensor (IndexedSlices of embedding lookups converted)."""
    # The reference's item-table gradient is dense (its zero row is a concat), and Adam then
    # decays the moments of every row at every step; keep that instead of sparse updates.
    if isinstance(gradient, tf.IndexedSlices):
        return tf.convert_to_tensor(gradient)
    return gradient


@keras.saving.register_keras_serializable(package="ader_tf")
class SessionRecommender(keras.Model):
    """Scores the next item of a session: encoder vector · item table rows 1..max_item.

    The encoder is any layer with `num_items`, an `item_embeddings` weight [num_items + 1, d]
    (row 0 = padding) and `call(item_ids, training) -> [B, d]`. Calling the model on
    `{"item_ids": ...}` (or the ids alone) returns logits [B, max_item]: column j scores item
    j + 1. `max_item` is a non-trainable variable, so growing the item universe between cycles
    needs neither a rebuild nor a retrace.

    Training (`fit`) uses the loss chosen with `configure_continual`. The training step is
    overridden (rather than `compute_loss`) because the loss is a sum of per-row terms over
    row subsets (current rows, exemplar rows) whose sizes differ between replicas: each replica
    divides its local sums by the *global* row counts (all-reduced), so gradients summed over
    replicas equal the single-device gradient exactly. Keras' own step instead divides every
    replica's loss by the replica count, which is right only for equal local batches of one
    mean. It also needs the teacher's forward pass and metrics of the global values.

    Args:
        encoder: The session encoder (e.g. `SASRecEncoder`).
        **kwargs: Forwarded to `keras.Model`.
    """

    def __init__(self, encoder: keras.layers.Layer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for attribute in ("num_items", "item_embeddings"):
            if not hasattr(encoder, attribute):
                raise ValueError(f"`encoder` must have `{attribute}`, got {encoder!r}.")
        self.encoder = encoder

        # === State ===
        self._max_item = self.add_weight(
            name="max_item",
            shape=(),
            dtype="int32",
            initializer=keras.initializers.Constant(encoder.num_items),
            trainable=False,
        )
        self._lambda_t = self.add_weight(
            name="lambda_t", shape=(), initializer="zeros", trainable=False
        )

        # === Metrics ===
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.ce_tracker = keras.metrics.Mean(name="ce_loss")
        self.kd_tracker = keras.metrics.Mean(name="kd_loss")
        self.er_tracker = keras.metrics.Mean(name="er_loss")
        self.ewc_tracker = keras.metrics.Mean(name="ewc_loss")

        # Teacher, EWC state and compiled helpers are not part of this model's weights: set
        # them without Keras/TF attribute tracking so checkpoints keep one fixed structure.
        self._set_untracked("_mode", "plain")
        self._set_untracked("_teacher", None)
        self._set_untracked("_ewc", None)
        self._set_untracked("_compiled", {})
        self.built = True

    def _set_untracked(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def build(self, input_shape: Any = None) -> None:
        # Every variable is created in __init__ (the encoder builds itself too).
        self.built = True

    def build_all(self, maxlen: int | None = None) -> None:
        """Creates every variable, the optimizer's slots included, before a checkpoint restore.

        Args:
            maxlen: Width of the dummy input (default: 1; any width gives the same variables).
        """
        self.predict_logits(tf.ones([1, maxlen or 1], tf.int32))
        optimizer = getattr(self, "optimizer", None)  # absent until compile()
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.trainable_variables)

    # === Item universe and loss configuration ===

    @property
    def max_item(self) -> int:
        """Number of items currently scored (ids 1..max_item)."""
        return int(keras.ops.convert_to_numpy(self._max_item))

    def set_max_item(self, max_item: int) -> None:
        """Restricts scoring and losses to items 1..max_item (no rebuild, no retrace).

        Raises:
            ValueError: If `max_item` is not in 1..num_items.
        """
        if not 1 <= int(max_item) <= self.encoder.num_items:
            raise ValueError(f"`max_item` must be in 1..{self.encoder.num_items}, got {max_item}.")
        self._max_item.assign(int(max_item))

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def lambda_t(self) -> float:
        return float(keras.ops.convert_to_numpy(self._lambda_t))

    @property
    def teacher(self) -> SessionRecommender | None:
        return self._teacher

    def configure_continual(
        self,
        mode: str,
        lambda_t: float = 0.0,
        teacher: SessionRecommender | None = None,
        ewc: EWCState | None = None,
    ) -> None:
        """Chooses the training loss for the next `fit` calls (PROTOCOL 2.4, 2.6).

        - "plain": mean CE over the batch's current rows (every row when no row is an exemplar).
        - "distill": plain + lambda_t * mean over exemplar rows of
          CE(softmax(teacher logits), student logits), both over items 1..teacher.max_item.
        - "replay": plain + lambda_t * mean one-hot CE of exemplar rows on their own targets.
        - "ewc": plain + (lambda_t / 2) * sum F * (theta - theta_prev)^2.

        `lambda_t` lives in a variable; a retrace happens only when the mode, teacher or EWC
        state object changes (once per cycle). The optimizer and its state are kept.

        Args:
            mode: One of "plain", "distill", "replay", "ewc".
            lambda_t: Weight of the exemplar term (replay, distill) or of the EWC penalty.
            teacher: Frozen previous-cycle model (mode "distill"); called with training=False.
            ewc: Fisher information and previous weights (mode "ewc"), from `compute_fisher`.

        Raises:
            ValueError: On an unknown mode or a missing/mismatched teacher or EWC state.
        """
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")
        if mode == "distill":
            if teacher is None:
                raise ValueError("mode 'distill' needs a `teacher`, got None.")
            teacher.trainable = False
        else:
            teacher = None
        if mode == "ewc":
            if ewc is None:
                raise ValueError("mode 'ewc' needs an `ewc` state, got None.")
            ewc.check_matches(self.trainable_variables)
        else:
            ewc = None
        if lambda_t < 0:
            raise ValueError(f"`lambda_t` must be >= 0, got {lambda_t}.")
        self._lambda_t.assign(float(lambda_t))
        if (mode, teacher, ewc) != (self._mode, self._teacher, self._ewc):
            self._set_untracked("_mode", mode)
            self._set_untracked("_teacher", teacher)
            self._set_untracked("_ewc", ewc)
            # Keras rebuilds these on the next fit/evaluate: one retrace per change.
            self.train_function = None
            self.test_function = None

    def reseed_dropout(self, seed: int) -> None:
        """Sets the state of every dropout seed generator from ``seed``.

        Dropout masks then depend only on ``seed`` and the steps taken since, not on what ran
        before: a run resumed at a cycle boundary draws the same masks as one never stopped.
        """
        generators = [
            layer.seed_generator
            for layer in self._flatten_layers(include_self=False, recursive=True)
            if isinstance(getattr(layer, "seed_generator", None), keras.random.SeedGenerator)
        ]
        for offset, generator in enumerate(generators):
            state = generator.state
            state.assign(tf.constant([seed % 2**31, offset], dtype=state.dtype))

    def frozen_copy(self) -> SessionRecommender:
        """A frozen copy with the same weights and max_item: the next cycle's teacher."""
        copy = self.__class__.from_config(self.get_config())
        copy.set_weights(self.get_weights())
        copy.trainable = False
        return copy

    # === Forward ===

    def call(self, inputs: Any, training: bool | None = None) -> tf.Tensor:
        item_ids, _ = _split_features(inputs)
        return self.score(self.encoder(item_ids, training=training))

    def score(self, representation: tf.Tensor) -> tf.Tensor:
        """Logits [B, max_item] of session vectors [B, d] against item rows 1..max_item.

        If the encoder has `transform_scores(logits)`, its result is returned instead.
        """
        table = self.encoder.item_embeddings
        rows = tf.slice(table, [1, 0], tf.stack([tf.convert_to_tensor(self._max_item), -1]))
        logits = tf.matmul(representation, rows, transpose_b=True)
        # An encoder may map its scores before the softmax (STAMP's sigmoid); losses, the
        # teacher and ranks all go through here, so they all see the same scores.
        transform = getattr(self.encoder, "transform_scores", None)
        return logits if transform is None else transform(logits)

    def _compiled_fn(self, name: str, fn: Any, signature: list) -> Any:
        if name not in self._compiled:
            self._compiled[name] = tf.function(fn, input_signature=signature)
        return self._compiled[name]

    def represent(self, item_ids: Any, training: bool = False) -> tf.Tensor:
        """Session vectors [B, d] (e.g. for herding); compiled once for any batch and width."""
        if training:
            return self.encoder(tf.cast(item_ids, tf.int32), training=True)
        fn = self._compiled_fn(
            "represent", lambda ids: self.encoder(ids, training=False), [_INT_MATRIX]
        )
        return fn(tf.cast(item_ids, tf.int32))

    def predict_logits(self, item_ids: Any) -> tf.Tensor:
        """Logits [B, max_item] with dropout off; compiled once for any batch and width."""
        fn = self._compiled_fn("logits", lambda ids: self(ids, training=False), [_INT_MATRIX])
        return fn(tf.cast(item_ids, tf.int32))

    def per_example_loss(self, features: Any, targets: Any) -> tf.Tensor:
        """Cross-entropy [B] of each row on its target over items 1..max_item, dropout off."""

        def loss_fn(ids: tf.Tensor, tgt: tf.Tensor) -> tf.Tensor:
            return _sparse_ce(tgt, self(ids, training=False))

        item_ids, _ = _split_features(features)
        fn = self._compiled_fn("per_example_loss", loss_fn, [_INT_MATRIX, _INT_VECTOR])
        return fn(item_ids, tf.cast(targets, tf.int32))

    def target_ranks(self, features: Any, targets: Any) -> tf.Tensor:
        """0-based rank [B] of each target: the number of items 1..max_item scored above it."""

        def rank_fn(ids: tf.Tensor, tgt: tf.Tensor) -> tf.Tensor:
            logits = self(ids, training=False)
            target_logit = tf.gather(logits, tgt - 1, batch_dims=1)
            return tf.reduce_sum(tf.cast(logits > target_logit[:, None], tf.int32), axis=1)

        item_ids, _ = _split_features(features)
        fn = self._compiled_fn("target_ranks", rank_fn, [_INT_MATRIX, _INT_VECTOR])
        return fn(item_ids, tf.cast(targets, tf.int32))

    # === Losses ===

    def _loss_terms(
        self,
        item_ids: tf.Tensor,
        is_exemplar: tf.Tensor,
        targets: tf.Tensor,
        training: bool,
    ) -> dict[str, tf.Tensor]:
        """This replica's share of each loss term: local sums over global row counts.

        The shares of all replicas add up to the single-device value of each term.
        """
        context = tf.distribute.get_replica_context()
        replicas = float(context.num_replicas_in_sync) if context is not None else 1.0

        is_exemplar = tf.cast(is_exemplar > 0, tf.float32)
        current = 1.0 - is_exemplar
        counts = tf.stack([tf.reduce_sum(current), tf.reduce_sum(is_exemplar)])
        if context is not None:
            counts = context.all_reduce(tf.distribute.ReduceOp.SUM, counts)
        num_current, num_exemplar = counts[0], counts[1]

        logits = self(item_ids, training=training)
        row_ce = _sparse_ce(targets, logits)
        terms = {"ce_loss": tf.math.divide_no_nan(tf.reduce_sum(row_ce * current), num_current)}

        if self._mode == "replay":
            terms["er_loss"] = self._lambda_t * tf.math.divide_no_nan(
                tf.reduce_sum(row_ce * is_exemplar), num_exemplar
            )
        elif self._mode == "distill":
            rows = tf.where(is_exemplar > 0)[:, 0]
            teacher_logits = tf.stop_gradient(
                self._teacher(tf.gather(item_ids, rows), training=False)
            )
            num_teacher_items = tf.shape(teacher_logits)[1]
            tf.debugging.assert_less_equal(
                num_teacher_items,
                tf.shape(logits)[1],
                message="the teacher scores more items than the student",
            )
            student_logits = tf.gather(logits, rows)[:, :num_teacher_items]
            row_kd = tf.nn.softmax_cross_entropy_with_logits(
                labels=tf.nn.softmax(teacher_logits), logits=student_logits
            )
            terms["kd_loss"] = self._lambda_t * tf.math.divide_no_nan(
                tf.reduce_sum(row_kd), num_exemplar
            )
        elif self._mode == "ewc":
            # A global term: every replica adds 1/replicas of it, so the summed gradient is 1x.
            terms["ewc_loss"] = self._ewc.penalty(self.trainable_variables, self._lambda_t) / (
                replicas
            )
        if self.losses:
            terms["regularization"] = tf.add_n(self.losses) / replicas
        return terms

    def _step_metrics(self, terms: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        context = tf.distribute.get_replica_context()
        total = tf.add_n(list(terms.values()))
        values = dict(terms, loss=total)
        if context is not None:
            values = {
                name: context.all_reduce(tf.distribute.ReduceOp.SUM, value)
                for name, value in values.items()
            }
        for metric in self.metrics:
            if metric.name in values:
                metric.update_state(values[metric.name])
        return {metric.name: metric.result() for metric in self.metrics}

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        metrics = [self.loss_tracker, self.ce_tracker]
        extra = {"distill": self.kd_tracker, "replay": self.er_tracker, "ewc": self.ewc_tracker}
        if self._mode in extra:
            metrics.append(extra[self._mode])
        return metrics

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        features, targets, _ = keras.utils.unpack_x_y_sample_weight(data)
        item_ids, is_exemplar = _split_features(features)
        targets = tf.cast(targets, tf.int32)
        variables = self.trainable_variables
        with tf.GradientTape() as tape:
            terms = self._loss_terms(item_ids, is_exemplar, targets, training=True)
            loss = tf.add_n(list(terms.values()))
        gradients = [dense_gradient(g) for g in tape.gradient(loss, variables)]
        self.optimizer.apply_gradients(zip(gradients, variables))
        return self._step_metrics(terms)

    def test_step(self, data: Any) -> dict[str, tf.Tensor]:
        features, targets, _ = keras.utils.unpack_x_y_sample_weight(data)
        item_ids, is_exemplar = _split_features(features)
        terms = self._loss_terms(item_ids, is_exemplar, tf.cast(targets, tf.int32), False)
        return self._step_metrics(terms)

    # === Serialisation ===

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"encoder": keras.saving.serialize_keras_object(self.encoder)})
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SessionRecommender:
        config = dict(config)
        encoder = keras.saving.deserialize_keras_object(config.pop("encoder"))
        return cls(encoder=encoder, **config)


def _sparse_ce(targets: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Per-row softmax cross-entropy of item ids (>= 1) against logits over items 1..n."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets - 1, logits=logits)
