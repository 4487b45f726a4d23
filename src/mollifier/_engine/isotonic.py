r"""Isotonic regression by pool-adjacent-violators, batched over rows (array-API code).

The permutahedron projections of Blondel et al. (2020) reduce to one isotonic problem
per row: with ``a`` and ``b`` in the order of a descending sort,

* ``"l2"``: :math:`v = \arg\min_{v_1 \ge \dots \ge v_n} \|v - (a - b)\|^2`, so that
  on each block ``B`` of the solution :math:`v_B = \mathrm{mean}_B a - \mathrm{mean}_B b`;
* ``"kl"``: :math:`v = \arg\min_{v_1 \ge \dots \ge v_n} \langle e^{a - v}, 1\rangle +
  \langle e^{b}, v\rangle`, so that :math:`v_B = \mathrm{lse}_B a - \mathrm{lse}_B b`.

The blocks are found by PAV on a stack: each row pushes its next entry or merges the
two blocks on top of its stack while their values violate the order (``<=``: equal
values are pooled, as fast-soft-sort does). A row pushes ``n`` times and merges at most
``n - 1`` times, so ``2n - 2`` steps in which every row does one of the two (or nothing,
once done) solve every row at once: ``O(n)`` steps of ``O(rows)`` work, no branching on
values, one ``fori_loop`` under ``jax.jit``.

The solution is reported per entry as its block's statistics (:class:`Pool`), from
which the projections form their outputs without cancellation (a block of one entry
gives back that entry exactly), and the Jacobians are block averages: ``t -> sum_B q t``
broadcast over the block, with weights ``q`` (``1/|B|`` for ``"l2"``, the block's
softmax for ``"kl"``), computed from a cumulative sum in ``O(n)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .._backend import Array, Backend

L2, KL = "l2", "kl"
"""The regularizations: the pooled statistic of ``a`` and ``b`` is their sum (``"l2"``)
or their logsumexp (``"kl"``); ``b`` may instead be pooled as a plain sum of positive
numbers whose log enters the value (``linear_b``)."""


@dataclass(frozen=True)
class Pool:
    """The PAV solution of each row, per entry (arrays of shape ``(rows, n)``).

    ``a_pool`` and ``b_pool`` are the block's pooled ``a`` and ``b`` (sums for ``"l2"``
    and for a ``linear_b``, logsumexps for ``"kl"``), ``size`` its number of entries (a
    float), ``start`` and ``end`` its first and one-past-last positions (integers).
    """

    a_pool: Array
    b_pool: Array
    size: Array
    start: Array
    end: Array


def _merge(be: Backend, left: Array, right: Array, logs: bool) -> Array:
    return be.xp.logaddexp(left, right) if logs else left + right


def _block_value(be: Backend, a: Array, b: Array, size: Array, kind: str, linear_b: bool) -> Array:
    """The value ``v_B`` of a block from its pooled statistics."""
    if kind == L2:
        return (a - b) / size
    return a - (be.xp.log(b) if linear_b else b)


def _take(be: Backend, values: Array, index: Array) -> Array:
    return be.xp.take_along_axis(values, index, axis=1)


def pav(be: Backend, a: Array, b: Array, kind: str, linear_b: bool = False) -> Pool:
    """Solve the isotonic problem of every row of ``a``, ``b`` (shape ``(rows, n)``,
    ``n >= 1``, sorted so that the constraint is ``v_1 >= ... >= v_n``; see the module
    doc). ``linear_b`` pools ``b > 0`` by sums and uses ``log(sum b)`` in the value
    (``kind="kl"`` only): the KL rank keeps ``sum_B w`` exact that way."""
    xp = be.xp
    rows, n = a.shape
    logs_a = kind == KL
    logs_b = kind == KL and not linear_b
    index_dtype = xp.argsort(a[:1, :1], axis=1).dtype  # int64, or JAX's int32
    zero_index = xp.zeros((rows, 1), dtype=index_dtype, device=_device(be, a))
    one = zero_index + 1
    last = n - 1
    a_stack = xp.zeros_like(a)
    b_stack = xp.zeros_like(b)
    size_stack = xp.zeros_like(a)
    start_stack = xp.zeros((rows, n), dtype=index_dtype, device=_device(be, a))
    a_stack = be.put_along_rows(a_stack, zero_index, a[:, :1])
    b_stack = be.put_along_rows(b_stack, zero_index, b[:, :1])
    size_stack = be.put_along_rows(size_stack, zero_index, xp.ones_like(a[:, :1]))

    def step(_: Any, state: tuple[Array, ...]) -> tuple[Array, ...]:
        a_s, b_s, size_s, start_s, count, upcoming = state
        top = count - 1
        below = xp.clip(count - 2, min=0)
        a_top, a_below = _take(be, a_s, top), _take(be, a_s, below)
        b_top, b_below = _take(be, b_s, top), _take(be, b_s, below)
        size_top, size_below = _take(be, size_s, top), _take(be, size_s, below)
        merge = (count >= 2) & (
            _block_value(be, a_below, b_below, size_below, kind, linear_b)
            <= _block_value(be, a_top, b_top, size_top, kind, linear_b)
        )
        push = ~merge & (upcoming <= last)
        entry = xp.clip(upcoming, max=last)
        a_new, b_new = _take(be, a, entry), _take(be, b, entry)
        # the position written: the merged block, the pushed entry, or the top again
        at = xp.where(merge, below, xp.where(push, count, top))

        def written(merged: Array, pushed: Array, kept: Array) -> Array:
            return xp.where(merge, merged, xp.where(push, pushed, kept))

        a_s = be.put_along_rows(a_s, at, written(_merge(be, a_below, a_top, logs_a), a_new, a_top))
        b_s = be.put_along_rows(b_s, at, written(_merge(be, b_below, b_top, logs_b), b_new, b_top))
        size_s = be.put_along_rows(
            size_s, at, written(size_below + size_top, xp.ones_like(size_top), size_top)
        )
        start_top, start_below = _take(be, start_s, top), _take(be, start_s, below)
        start_s = be.put_along_rows(start_s, at, written(start_below, entry, start_top))
        count = count + xp.astype(push, index_dtype) - xp.astype(merge, index_dtype)
        upcoming = upcoming + xp.astype(push, index_dtype)
        return a_s, b_s, size_s, start_s, count, upcoming

    state = (a_stack, b_stack, size_stack, start_stack, one, one)
    a_stack, b_stack, size_stack, start_stack, count, _ = be.fori_loop(
        max(2 * n - 2, 0), step, state
    )
    # block of each entry: the number of block starts after position 0 up to it
    blocks = xp.arange(n, dtype=index_dtype, device=_device(be, a))[None, :]
    marks = xp.zeros((rows, n + 1), dtype=index_dtype, device=_device(be, a))
    beyond = xp.where((blocks >= 1) & (blocks < count), start_stack, n)  # unused: column n
    marks = be.put_along_rows(marks, beyond, xp.ones_like(beyond))
    block = xp.cumulative_sum(marks[:, :n], axis=1)
    size = _take(be, size_stack, block)
    start = _take(be, start_stack, block)
    return Pool(
        _take(be, a_stack, block),
        _take(be, b_stack, block),
        size,
        start,
        start + xp.astype(size, index_dtype),
    )


def _device(be: Backend, x: Array) -> Any:
    return x.device if be.name == "torch" else None


def block_sum(be: Backend, pool: Pool, u: Array) -> Array:
    """``sum_{j in B(i)} u_j`` for every entry ``i`` (rows of shape ``(rows, n)``)."""
    xp = be.xp
    totals = xp.cumulative_sum(u, axis=1, include_initial=True)
    return _take(be, totals, pool.end) - _take(be, totals, pool.start)


def weights(be: Backend, pool: Pool, values: Array, pooled: Array, kind: str) -> Array:
    """The block weights ``q`` of the variable whose pooled statistic is ``pooled``:
    ``1/|B|`` for ``"l2"``, ``exp(values - lse_B values)`` (the block's softmax) for
    ``"kl"``."""
    if kind == L2:
        return 1.0 / pool.size
    return be.xp.exp(values - pooled)


def nan_rows(be: Backend, x: Array, out: Array) -> Array:
    """``out``, with every entry of a row that holds a NaN set to NaN."""
    xp = be.xp
    bad = xp.any(xp.isnan(x), axis=1, keepdims=True)
    return xp.where(bad, be.const(math.nan, out), out)
