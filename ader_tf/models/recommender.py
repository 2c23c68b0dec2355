"""Next-item recommender around a session encoder, trained on a pluggable objective."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from ader_tf.models.encoder import SessionEncoder
from ader_tf.objectives import CrossEntropy, Objective, StepInputs, Term
from ader_tf.objectives.softmax import sparse_softmax_cross_entropy

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


def _split_features(inputs: Any) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(item_ids int32 [B, L], is_exemplar float32 [B], exemplar_index int32 [B]) of a batch.

    Accepts a features dict or the ids alone; absent columns mean "every row is current".
    """
    if isinstance(inputs, dict):
        item_ids = tf.cast(inputs["item_ids"], tf.int32)
        is_exemplar = inputs.get("is_exemplar")
        exemplar_index = inputs.get("exemplar_index")
    else:
        item_ids, is_exemplar, exemplar_index = tf.cast(inputs, tf.int32), None, None
    rows = tf.shape(item_ids)[:1]
    if is_exemplar is None:
        is_exemplar = tf.zeros(rows, tf.float32)
    if exemplar_index is None:
        exemplar_index = tf.fill(rows, -1)
    return item_ids, tf.cast(is_exemplar, tf.float32), tf.cast(exemplar_index, tf.int32)


def dense_gradient(gradient: Any) -> Any:
    """The gradient as a dense tensor (IndexedSlices of embedding lookups converted)."""
    # The reference's item-table gradient is dense (its zero row is a concat), and Adam then
    # decays the moments of every row at every step; keep that instead of sparse updates.
    if isinstance(gradient, tf.IndexedSlices):
        return tf.convert_to_tensor(gradient)
    return gradient


class _CompiledFunctions:
    """tf.functions by name, compiled once each.

    A plain object: a dict attribute would be wrapped and tracked by Keras and TensorFlow,
    and the functions (TensorFlow trackables) would then become part of the checkpoint graph.
    """

    def __init__(self) -> None:
        self._functions: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        return self._functions[name]

    def get(self, name: str, fn: Any, signature: list) -> Any:
        """The function compiled as ``name``, compiling ``fn`` with ``signature`` first."""
        if name not in self._functions:
            self._functions[name] = tf.function(fn, input_signature=signature)
        return self._functions[name]


@keras.saving.register_keras_serializable(package="ader_tf")
class SessionRecommender(keras.Model):
    """Scores the next item of a session: encoder vector · item table rows 1..max_item.

    The encoder is any `SessionEncoder` (an `item_embeddings` weight [num_items + 1, d], row
    0 = padding, and `call(item_ids, training) -> [B, d]`). Calling the model on
    `{"item_ids": ...}` (or the ids alone) returns logits [B, max_item]: column j scores item
    j + 1. `max_item` is a non-trainable variable, so growing the item universe between cycles
    needs neither a rebuild nor a retrace.

    Training (`fit`) minimises the model's objective (`set_objective`; cross-entropy on the
    current rows by default). The training step is overridden (rather than `compute_loss`)
    because an objective's terms are sums over row subsets (current rows, exemplar rows) whose
    sizes differ between replicas: each replica divides its local sums by the *global* row
    counts (all-reduced here, in one place), so gradients summed over replicas equal the
    single-device gradient exactly. Keras' own step divides every replica's loss by the replica
    count instead, which is right only for equal local batches of one mean.

    Args:
        encoder: The session encoder (e.g. `SASRecEncoder`).
        **kwargs: Forwarded to `keras.Model`.
    """

    def __init__(self, encoder: SessionEncoder, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(encoder, SessionEncoder):
            raise ValueError(f"`encoder` must be a SessionEncoder, got {encoder!r}.")
        self.encoder = encoder

        # === State ===
        self._max_item = self.add_weight(
            name="max_item",
            shape=(),
            dtype="int32",
            initializer=keras.initializers.Constant(encoder.num_items),
            trainable=False,
        )

        # === Metrics ===
        self.loss_tracker = keras.metrics.Mean(name="loss")
        # Rows trained on (current and exemplar rows, all replicas): shows that a distributed
        # epoch sees each example once, as one process does.
        self.examples_tracker = keras.metrics.Sum(name="examples")

        # A plain Python object, not a Keras layer: Keras does not track it, so what it holds
        # (a teacher, importance weights) never enters this model's checkpoints.
        self._objective: Objective = CrossEntropy()
        self._objective.build_metrics()
        self._compiled = _CompiledFunctions()
        self.built = True

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

    def _maybe_symbolic_build(self, iterator: Any = None, data_batch: Any = None) -> None:
        """Skips Keras' symbolic build: every variable exists once `build_all` has run.

        Under MultiWorkerMirroredStrategy Keras 3 builds by averaging the first batch over the
        replicas (`strategy.reduce("MEAN", batch)`), which fails on a features dict ("unsupported
        type <class 'dict'>") and could not average batches of different widths anyway.
        """
        optimizer = getattr(self, "optimizer", None)
        if not self.built or (optimizer is not None and not optimizer.built):
            super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    # === Item universe and objective ===

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
    def objective(self) -> Objective:
        """What `fit` minimises."""
        return self._objective

    def set_objective(self, objective: Objective) -> None:
        """Trains the next `fit` calls on `objective`; the optimizer and its state are kept.

        Setting the same object again costs nothing; a new object retraces the training step
        once. Objectives that change a weight between cycles keep it in a variable for that.

        Raises:
            ValueError: If `objective` is not an `Objective`.
        """
        if not isinstance(objective, Objective):
            raise ValueError(f"`objective` must be an Objective, got {objective!r}.")
        if objective is self._objective:
            return
        with self.distribute_strategy.scope():
            objective.build_metrics()
        self._objective = objective
        # Keras rebuilds these on the next fit/evaluate.
        self.train_function = None
        self.test_function = None

    def reseed_dropout(self, state_of: Callable[[int], tuple[int, int]]) -> None:
        """Sets the state of every dropout seed generator: generator ``k`` (in the model's
        fixed layer order) starts at ``state_of(k)``.

        Dropout masks then depend only on those states and the steps taken since, not on what
        ran before: a run resumed at a cycle boundary draws the same masks as one never
        stopped. A generator advances the second word of its state by one per draw, so the
        first words must differ between generators, or one layer's masks would repeat
        another's a few draws later.

        Raises:
            ValueError: if two generators would start with the same first word.
        """
        generators = [
            layer.seed_generator
            for layer in self._flatten_layers(include_self=False, recursive=True)
            if isinstance(getattr(layer, "seed_generator", None), keras.random.SeedGenerator)
        ]
        states = [tuple(int(word) for word in state_of(k)) for k in range(len(generators))]
        if len({first for first, _ in states}) < len(states):
            raise ValueError(f"dropout generators must start in distinct streams: {states}")
        for generator, words in zip(generators, states):
            state = generator.state
            state.assign(tf.constant(words, dtype=state.dtype))

    # === Forward ===

    def call(self, inputs: Any, training: bool | None = None) -> tf.Tensor:
        item_ids, _, _ = _split_features(inputs)
        return self.score(self.encoder(item_ids, training=training))

    def score(self, representation: tf.Tensor, num_items: int | None = None) -> tf.Tensor:
        """Logits [B, n] of session vectors [B, d] against item rows 1..n.

        The encoder's `transform_scores` maps them (STAMP's optional sigmoid); losses, the
        teacher, ranks and the SavedModel export all go through here, so they all see the same
        scores.

        Args:
            representation: Session vectors [B, d].
            num_items: n as a Python int, for a static output width (the export's signatures
                need one); default `max_item`, a variable, so the width follows the item
                universe without a retrace.

        Raises:
            ValueError: If `num_items` is not in 1..the encoder's num_items.
        """
        table = self.encoder.item_embeddings
        if num_items is not None:
            if not 1 <= num_items <= self.encoder.num_items:
                raise ValueError(f"`num_items` must be in 1..{self.encoder.num_items}, "
                                 f"got {num_items}.")
            rows = table[1 : num_items + 1]
        else:
            rows = tf.slice(table, [1, 0], tf.stack([tf.convert_to_tensor(self._max_item), -1]))
        logits = tf.matmul(representation, rows, transpose_b=True)
        return self.encoder.transform_scores(logits)

    def _compiled_fn(self, name: str, fn: Any, signature: list) -> Any:
        return self._compiled.get(name, fn, signature)

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

        item_ids, _, _ = _split_features(features)
        fn = self._compiled_fn("per_example_loss", loss_fn, [_INT_MATRIX, _INT_VECTOR])
        return fn(item_ids, tf.cast(targets, tf.int32))

    # === Training step ===

    def _step_inputs(self, data: Any, training: bool) -> StepInputs:
        """The batch and the student's forward pass, as objectives see them."""
        features, targets, _ = keras.utils.unpack_x_y_sample_weight(data)
        item_ids, is_exemplar, exemplar_index = _split_features(features)
        targets = tf.cast(targets, tf.int32)
        logits = self(item_ids, training=training)
        return StepInputs(
            model=self,
            item_ids=item_ids,
            targets=targets,
            is_exemplar=tf.cast(is_exemplar > 0, tf.float32),
            exemplar_index=exemplar_index,
            logits=logits,
            # From one softmax (2.9x faster than TensorFlow's fused kernel; same values up to
            # rounding). `per_example_loss`, which ranks exemplars, keeps TensorFlow's kernel.
            row_ce=sparse_softmax_cross_entropy(targets - 1, logits),
            training=training,
        )

    def _shares(self, terms: dict[str, Term]) -> dict[str, tf.Tensor]:
        """This replica's share of each term: local sums over global row counts.

        The shares of all replicas add up to the single-device value of each term.
        """
        context = tf.distribute.get_replica_context()
        replicas = float(context.num_replicas_in_sync) if context is not None else 1.0
        counted = [name for name, term in terms.items() if term.count is not None]
        counts: dict[str, tf.Tensor] = {}
        if counted:
            stacked = tf.stack([terms[name].count for name in counted])
            if context is not None:
                stacked = context.all_reduce(tf.distribute.ReduceOp.SUM, stacked)
            counts = {name: stacked[i] for i, name in enumerate(counted)}
        shares = {}
        for name, term in terms.items():
            if term.count is None:
                # A row-free term: every replica adds 1/replicas, so the summed gradient is 1x.
                value = term.total / replicas
            else:
                value = tf.math.divide_no_nan(term.total, counts[name])
            shares[name] = value if term.weight is None else term.weight * value
        return shares

    def _loss_shares(self, inputs: StepInputs) -> dict[str, tf.Tensor]:
        """The objective's shares plus the layers' regularisation losses."""
        terms = self._objective.terms(inputs)
        if self.losses:  # a row-free term, shared out over the replicas like a penalty
            terms = dict(terms, regularization=Term(tf.add_n(self.losses), None))
        return self._shares(terms)

    def _step_metrics(self, shares: dict[str, tf.Tensor], rows: tf.Tensor) -> dict[str, tf.Tensor]:
        context = tf.distribute.get_replica_context()
        loss_terms = [v for k, v in shares.items() if k not in self._objective.reference_names]
        values = dict(shares, loss=tf.add_n(loss_terms) if loss_terms else tf.constant(0.0))
        if context is not None:
            values = {
                name: context.all_reduce(tf.distribute.ReduceOp.SUM, value)
                for name, value in values.items()
            }
        for metric in self.metrics:
            if metric.name in values:
                metric.update_state(values[metric.name])
        # The local count: a metric's variables under a strategy sum their updates over the
        # replicas (which leaves the means above, whose totals and counts both scale, as is).
        self.examples_tracker.update_state(tf.cast(tf.shape(rows)[0], tf.float32))
        results = {metric.name: metric.result() for metric in self.metrics}
        if _reduced_along_batch(self.distribute_strategy):
            # The results are global already (the same on every replica). Keras 3 reduces
            # step outputs of a multi-worker strategy with `strategy.reduce(MEAN, v, axis=0)`,
            # which needs a batch axis: a [1] value comes out as the scalar itself.
            results = {name: value[None] for name, value in results.items()}
        return results

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.loss_tracker, self.examples_tracker, *self._objective.build_metrics()]

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        variables = self.trainable_variables
        objective = self._objective
        with tf.GradientTape(persistent=bool(objective.reference_names)) as tape:
            inputs = self._step_inputs(data, training=True)
            shares = self._loss_shares(inputs)
            loss = tf.add_n(list(shares.values()))
            reference_shares = self._shares(objective.reference_terms(inputs))
        gradients = [dense_gradient(g) for g in tape.gradient(loss, variables)]
        reference = None
        if reference_shares:
            reference_loss = tf.add_n(list(reference_shares.values()))
            reference = [dense_gradient(g) for g in tape.gradient(reference_loss, variables)]
        gradients = objective.adjust_gradients(gradients, reference)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return self._step_metrics(dict(shares, **reference_shares), inputs.targets)

    def test_step(self, data: Any) -> dict[str, tf.Tensor]:
        inputs = self._step_inputs(data, training=False)
        shares = self._loss_shares(inputs)
        return self._step_metrics(dict(shares, **self._shares(
            self._objective.reference_terms(inputs))), inputs.targets)

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


def _reduced_along_batch(strategy: tf.distribute.Strategy) -> bool:
    """Whether Keras reduces this strategy's step outputs along axis 0 (its multi-worker case).

    The same test as Keras' `_collective_all_reduce_multi_worker` (keras/src/backend/
    tensorflow/trainer.py); it has no public equivalent.
    """
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and bool(
        strategy.extended._in_multi_worker_mode()
    )


def _sparse_ce(targets: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Per-row softmax cross-entropy of item ids (>= 1) against logits over items 1..n."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets - 1, logits=logits)
