"""Exemplar selection: per-item quotas, herding, loss and random selection, reservoir sampling.

After each cycle ADER keeps a small replay set of examples, the exemplars: every candidate
(this cycle's train + validation examples and the previous exemplars) competes for a per-item
quota drawn from a multinomial, and a selection rule picks that many candidates per target item.
Reservoir sampling is a rule of another kind: no quotas, a uniform sample of fixed size over the
whole stream of examples seen so far, updated as new examples arrive.

Examples are plain numpy arrays (``inputs`` int32 ``[N, maxlen]`` left-padded with 0, ``targets``
int32 ``[N]`` with item ids >= 1), so this module does not depend on the data or model code.
Representations and losses are computed by the caller in one batched forward pass. Writing and
reading the chosen exemplars is ``exemplar_store``'s job.
"""

from __future__ import annotations

import numpy as np

METHODS = ("herding", "loss", "random")
"""Selection rules accepted by :func:`select_exemplars`."""


# === Quotas ===


def exemplar_quotas(
    targets: np.ndarray,
    exemplar_size: int,
    max_item: int,
    equal: bool,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draws how many exemplars each item may keep.

    One multinomial draw of ``exemplar_size`` over items 1..max_item, with probabilities
    proportional to each item's candidate count (``equal``: uniform over all items 1..max_item,
    as the reference's ``equal_exemplar``), then capped at the item's candidate count, so the
    total can end up below ``exemplar_size``.

    Args:
        targets: int ``[N]`` target item ids of all candidates, in 1..max_item.
        exemplar_size: number of exemplars to draw (30,000 in the paper).
        max_item: largest item id known this cycle.
        equal: draw uniformly over items instead of by candidate count.
        rng: source of randomness.

    Returns:
        int64 ``[max_item + 1]``: quota per item id; slot 0 (padding) is always 0.

    Raises:
        ValueError: on a negative size, no candidates, or target ids outside 1..max_item.
    """
    if exemplar_size < 0:
        raise ValueError(f"exemplar_size must be >= 0, got {exemplar_size}")
    counts = _item_counts(targets, max_item)
    if counts.sum() == 0:
        raise ValueError("exemplar_quotas needs at least one candidate, got none")
    probs = np.full(max_item, 1.0 / max_item) if equal else counts[1:] / counts[1:].sum()
    quotas = np.zeros(max_item + 1, dtype=np.int64)
    quotas[1:] = rng.multinomial(int(exemplar_size), probs)
    return np.minimum(quotas, counts)


def _item_counts(targets: np.ndarray, max_item: int) -> np.ndarray:
    """Candidate count per item id (int64 ``[max_item + 1]``), checking the id range."""
    if max_item < 1:
        raise ValueError(f"max_item must be >= 1, got {max_item}")
    targets = _as_int_vector(targets, "targets")
    if targets.size and (targets.min() < 1 or targets.max() > max_item):
        raise ValueError(
            f"targets must lie in 1..{max_item}, got range {targets.min()}..{targets.max()}"
        )
    return np.bincount(targets, minlength=max_item + 1).astype(np.int64)


def _as_int_vector(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D integer array, got {values.dtype} {values.shape}")
    return values


# === Herding ===


def herding_order(reps: np.ndarray, m: int) -> np.ndarray:
    """Picks ``m`` rows whose running mean tracks the mean of all rows (iCaRL-style herding).

    Reproduces the reference exactly: rows are scaled to unit length, ``mu`` is their mean and
    ``w = mu``; each step picks ``argmax <w, phi>`` (first maximum on ties) and sets
    ``w += mu - phi_picked``. A pick already chosen is not added again, and the loop stops after
    ``m`` distinct picks or ``1.1 * m`` steps, whichever comes first, so fewer than ``m`` rows can
    come back. The arithmetic stays in the dtype of ``reps`` (float32 from the model) and follows
    the reference's array layout, because the picks are sensitive to rounding.

    Args:
        reps: float ``[n, d]`` raw (not normalised) representations of one item's candidates.
        m: quota; values above ``n`` are lowered to ``n`` as the reference's caller does.

    Returns:
        int64 indices into ``reps`` in pick order, distinct, at most ``min(m, n)`` of them.
    """
    reps = np.asarray(reps)
    if reps.ndim != 2:
        raise ValueError(f"reps must be 2-D [n, d], got shape {reps.shape}")
    if not np.issubdtype(reps.dtype, np.floating):
        reps = reps.astype(np.float32)
    m = min(int(m), reps.shape[0])
    if m <= 0:
        return np.zeros(0, dtype=np.int64)
    # Columns are candidates, as in the reference: reductions then run over the same memory
    # order, which keeps every float32 sum bit-identical to it.
    phi = reps.T / np.linalg.norm(reps.T, axis=0)
    mu = phi.mean(axis=1)
    w = mu
    picked: list[int] = []
    seen: set[int] = set()
    steps = 0
    while len(picked) < m and steps < 1.1 * m:
        best = int(np.argmax(np.dot(w, phi)))
        w = w + mu - phi[:, best]
        steps += 1
        if best not in seen:
            seen.add(best)
            picked.append(best)
    return np.asarray(picked, dtype=np.int64)


# === Selection ===


def select_exemplars(
    targets: np.ndarray,
    quotas: np.ndarray,
    method: str,
    reps: np.ndarray | None = None,
    losses: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Picks up to ``quotas[y]`` candidates of each target item ``y``.

    Methods:
        - ``herding``: :func:`herding_order` on the item's representations (needs ``reps``).
        - ``loss``: the candidates with the smallest per-example loss (needs ``losses``; ties
          keep candidate order). This is the intended rule, not the reference's: its
          ``loss_selection`` argsorts the batch-mean loss, a scalar, so it keeps the first ``m``
          candidates of each item whatever their loss.
        - ``random``: uniformly without replacement (needs ``rng``).

    Args:
        targets: int ``[N]`` target item id of every candidate.
        quotas: int ``[max_item + 1]`` from :func:`exemplar_quotas`; a quota above an item's
            candidate count is lowered to it.
        method: one of :data:`METHODS`.
        reps: float ``[N, d]`` final representations (dropout off), for ``herding``.
        losses: float ``[N]`` per-example loss, for ``loss``.
        rng: random generator, for ``random``; the result is fixed by its seed.

    Returns:
        int64 candidate indices, grouped by item in increasing id order; inside an item in
        pick order (herding), increasing loss (loss) or random order (random).

    Raises:
        ValueError: on an unknown method, a missing or mis-shaped input, or targets outside
            the quota range.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    quotas = _as_int_vector(quotas, "quotas")
    targets = _as_int_vector(targets, "targets")
    if quotas.size < 2:
        raise ValueError(f"quotas must cover at least item 1, got shape {quotas.shape}")
    counts = _item_counts(targets, quotas.size - 1)
    take = np.minimum(np.maximum(quotas, 0), counts)
    take[0] = 0
    if method == "herding":
        reps = _check_rows(reps, targets.size, "reps", ndim=2)
        return _select_herding(targets, take, counts, reps)
    if method == "loss":
        keys = _check_rows(losses, targets.size, "losses", ndim=1)
    else:
        if rng is None:
            raise ValueError("method 'random' needs rng, got None")
        # Keeping the m smallest of i.i.d. uniform keys is a uniform draw without replacement.
        keys = rng.random(targets.size)
    return _smallest_per_item(targets, take, counts, keys)


def _check_rows(values: np.ndarray | None, n: int, name: str, ndim: int) -> np.ndarray:
    """Checks that ``values`` has one row per candidate."""
    if values is None:
        raise ValueError(f"this selection method needs {name}, got None")
    values = np.asarray(values)
    if values.ndim != ndim or values.shape[0] != n:
        raise ValueError(f"{name} must have {ndim} dims and {n} rows, got shape {values.shape}")
    return values


def _select_herding(
    targets: np.ndarray, take: np.ndarray, counts: np.ndarray, reps: np.ndarray
) -> np.ndarray:
    """Runs herding item by item on candidates grouped once by a stable sort."""
    order = np.argsort(targets, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    chosen: list[np.ndarray] = []
    for item in np.flatnonzero(take):
        members = order[starts[item] : starts[item + 1]]
        if members.size == 1:
            chosen.append(members)  # herding on one row always picks it
            continue
        chosen.append(members[herding_order(reps[members], take[item])])
    if not chosen:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate(chosen).astype(np.int64)


def _smallest_per_item(
    targets: np.ndarray, take: np.ndarray, counts: np.ndarray, keys: np.ndarray
) -> np.ndarray:
    """Keeps the ``take[y]`` candidates with the smallest key for each item ``y``."""
    order = np.lexsort((keys, targets))  # by item, then key; stable on equal keys
    sorted_targets = targets[order]
    starts = np.concatenate([[0], np.cumsum(counts)])
    rank = np.arange(order.size) - starts[sorted_targets]
    return order[rank < take[sorted_targets]].astype(np.int64)


# === Reservoir sampling ===


def reservoir_update(
    kept: int, seen: int, num_new: int, capacity: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Which reservoir slots the next ``num_new`` stream examples take (Vitter's Algorithm R).

    Algorithm R keeps a uniform sample of ``capacity`` examples of a stream: the example at
    0-based stream position ``t`` takes free slot ``t`` while the reservoir is not full;
    afterwards it draws ``r`` uniformly from ``0..t`` and replaces slot ``r`` if
    ``r < capacity``, else it is dropped. After ``n`` examples every one of them is in the
    reservoir with probability ``min(1, capacity / n)``, and every subset of that size is
    equally likely.

    The ``num_new`` examples are handled at once, and this is exact, the same distribution as
    one example at a time: an example's draw depends only on its stream position, never on
    what the reservoir holds, so all draws can be made up front; what remains of the
    sequential algorithm is a series of overwrites, after which each slot holds the last
    example that wrote to it. That last writer is picked explicitly (the write with the
    latest stream position per slot), not left to the order of numpy's fancy assignment.

    Args:
        kept: examples in the reservoir now. Algorithm R's reservoir always holds
            ``min(seen, capacity)``; any other value is an error.
        seen: stream examples seen before the new ones, kept or not.
        num_new: new examples arriving.
        capacity: the reservoir's size.
        rng: source of the draws; for a given seed the result is fixed.

    Returns:
        ``(slots, sources)``, int64, one entry per slot that changes, slots increasing: slot
        ``slots[i]`` now holds new example ``sources[i]`` (0-based among the new examples).
        Slots from ``kept`` on are new slots of a reservoir that grows.

    Raises:
        ValueError: naming the value, on a count that is not an integer >= 0, a ``kept`` other
            than ``min(seen, capacity)`` or an ``rng`` that is not a numpy Generator.
    """
    for name, value in (("kept", kept), ("seen", seen), ("num_new", num_new),
                        ("capacity", capacity)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    if kept != min(seen, capacity):
        raise ValueError(
            f"kept must be min(seen, capacity) = {min(seen, capacity)} (seen={seen}, "
            f"capacity={capacity}), got {kept}"
        )
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy Generator, got {rng!r}")
    position = int(seen) + np.arange(num_new, dtype=np.int64)  # stream position of each
    # While there is room, example t takes free slot t (kept == seen then), without a draw.
    fill = min(int(num_new), int(capacity) - int(kept))
    slot = np.empty(num_new, dtype=np.int64)
    slot[:fill] = position[:fill]
    if fill < num_new:
        slot[fill:] = rng.integers(0, position[fill:] + 1)  # uniform on 0..t, both included
    writes = np.flatnonzero(slot < capacity)  # in stream order
    # Latest write first: np.unique's index of a slot's first occurrence is then its last write.
    latest_first = writes[::-1]
    slots, first = np.unique(slot[latest_first], return_index=True)
    return slots.astype(np.int64), latest_first[first].astype(np.int64)


def reservoir_select(
    kept: int, seen: int, num_new: int, capacity: int, rng: np.random.Generator
) -> np.ndarray:
    """The reservoir after ``num_new`` more stream examples, as rows of [old rows, new rows].

    Applies :func:`reservoir_update` (see there for the arguments and errors) to a reservoir
    whose row ``s`` is slot ``s``.

    Returns:
        int64 ``[min(capacity, seen + num_new)]``: row ``s`` of the new reservoir is row
        ``index[s]`` of the concatenation of the ``kept`` old reservoir rows and the
        ``num_new`` new rows. Rows stay in slot order, which the next call relies on, so
        keep the reservoir in the order returned.
    """
    slots, sources = reservoir_update(kept, seen, num_new, capacity, rng)
    index = np.empty(min(capacity, seen + num_new), dtype=np.int64)
    index[:kept] = np.arange(kept)  # slots nobody overwrote keep their old row
    index[slots] = kept + sources  # slots are distinct, so the order of assignment is moot
    return index
