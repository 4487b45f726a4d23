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

    Every statistic of a block is kept relative to the block's first entry (its
    largest ``a`` and ``b``: both are sorted descending), so that nothing is lost when
    the entries are large and close (``x / w`` of ``1e6`` in float32): ``a_first`` and
    ``b_first`` are those entries, ``a_rest`` and ``b_rest`` the pooled differences
    ``sum_B (a - a_first)`` (``"l2"``) or ``log sum_B exp(a - a_first)`` (``"kl"``;
    ``b_rest`` is ``sum_B b`` itself for a ``linear_b``), ``size`` the block's number of
    entries (a float), ``start`` and ``end`` its first and one-past-last positions.
    """

    a_first: Array
    b_first: Array
    a_rest: Array
    b_rest: Array
    size: Array
    start: Array
    end: Array


# the columns of the stack: first entries, pooled differences, size
_A_FIRST, _B_FIRST, _A_REST, _B_REST, _SIZE = range(5)


def _pooled(be: Backend, rest_below: Array, rest_top: Array, shift: Array, size_top: Array,
            logs: bool) -> Array:  # fmt: skip
    """A pooled difference of two blocks relative to the lower one's first entry;
    ``shift = first_top - first_below <= 0``."""
    if logs:
        return be.xp.logaddexp(rest_below, rest_top + shift)
    return rest_below + (rest_top + size_top * shift)


def _merged(be: Backend, below: Array, top: Array, logs_a: bool, logs_b: bool,
            linear_b: bool) -> Array:  # fmt: skip
    """Two blocks' statistics (rows of the stack's 5 columns) pooled."""
    xp = be.xp
    size_top = top[:, _SIZE]
    a_rest = _pooled(be, below[:, _A_REST], top[:, _A_REST],
                     top[:, _A_FIRST] - below[:, _A_FIRST], size_top, logs_a)  # fmt: skip
    if linear_b:
        b_rest = below[:, _B_REST] + top[:, _B_REST]
    else:
        b_rest = _pooled(be, below[:, _B_REST], top[:, _B_REST],
                         top[:, _B_FIRST] - below[:, _B_FIRST], size_top, logs_b)  # fmt: skip
    columns = (below[:, _A_FIRST], below[:, _B_FIRST], a_rest, b_rest, below[:, _SIZE] + size_top)
    return xp.stack(columns, axis=1)


def _violated(be: Backend, below: Array, top: Array, kind: str, linear_b: bool) -> Array:
    """Whether ``v_below <= v_top``, with ``v = mean a - mean b`` (``"l2"``) or
    ``lse a - lse b`` (``"kl"``; ``lse a - log sum b`` for a ``linear_b``), computed from
    differences of first entries and pooled differences (no large value cancels)."""
    xp = be.xp
    a_gap = below[:, _A_FIRST] - top[:, _A_FIRST]
    if kind == L2:
        b_gap = below[:, _B_FIRST] - top[:, _B_FIRST]
        rest = (below[:, _A_REST] - below[:, _B_REST]) / below[:, _SIZE] - (
            top[:, _A_REST] - top[:, _B_REST]
        ) / top[:, _SIZE]
        return (a_gap - b_gap) + rest <= 0.0
    if linear_b:
        rest = (below[:, _A_REST] - top[:, _A_REST]) - (
            xp.log(below[:, _B_REST]) - xp.log(top[:, _B_REST])
        )
        return a_gap + rest <= 0.0
    b_gap = below[:, _B_FIRST] - top[:, _B_FIRST]
    rest = (below[:, _A_REST] - top[:, _A_REST]) - (below[:, _B_REST] - top[:, _B_REST])
    return (a_gap - b_gap) + rest <= 0.0


def pav(be: Backend, a: Array, b: Array, kind: str, linear_b: bool = False) -> Pool:
    """Solve the isotonic problem of every row of ``a``, ``b`` (shape ``(rows, n)``,
    ``n >= 1``, both sorted descending, the constraint ``v_1 >= ... >= v_n``; see the
    module doc). ``linear_b`` pools ``b > 0`` by plain sums and uses ``log(sum b)`` in
    the value (``kind="kl"`` only): the KL rank keeps ``sum_B w`` exact that way.

    The stacks of all rows are one array of shape ``(rows, n, 5)`` (see :class:`Pool`),
    read and written at one position per row and step (:meth:`Backend.take_each`):
    three reads and one write per step, whatever the number of rows, and no collective
    when the rows are sharded.
    """
    xp = be.xp
    rows, n = a.shape
    logs_a, logs_b = kind == KL, kind == KL and not linear_b
    device = _device(be, a)
    index_dtype = xp.argsort(a[:1, :1], axis=1).dtype  # int64, or JAX's int32
    base = xp.arange(rows, dtype=index_dtype, device=device) * n
    zeros = xp.zeros_like(a)
    b_rest = b if linear_b else zeros
    entries = xp.stack([a, b, zeros, b_rest, xp.ones_like(a)], axis=2)  # (rows, n, 5)
    one = xp.ones((rows,), dtype=index_dtype, device=device)
    zero, last = one - 1, one * (n - 1)  # arrays: no clip or astype in the loop (slow in NumPy)
    stack = be.put_each(xp.zeros_like(entries), base, zero, be.take_each(entries, base, zero))

    def step(_: Any, state: tuple[Array, ...]) -> tuple[Array, ...]:
        stats, count, upcoming = state
        top = count - 1
        below = xp.maximum(count - 2, zero)
        on_top, under = be.take_each(stats, base, top), be.take_each(stats, base, below)
        merge = (count >= 2) & _violated(be, under, on_top, kind, linear_b)
        push = ~merge & (upcoming <= last)
        # the row written: the merged block, the pushed entry, or the top again (done)
        at = xp.where(merge, below, xp.where(push, top + 1, top))
        pushed = be.take_each(entries, base, xp.minimum(upcoming, last))
        merged = _merged(be, under, on_top, logs_a, logs_b, linear_b)
        written = xp.where(merge[:, None], merged, xp.where(push[:, None], pushed, on_top))
        stats = be.put_each(stats, base, at, written)
        pushes = xp.where(push, one, zero)
        return stats, count + pushes - xp.where(merge, one, zero), upcoming + pushes

    stack, count, _ = be.fori_loop(max(2 * n - 2, 0), step, (stack, one, one))
    positions = xp.arange(n, dtype=index_dtype, device=device)[None, :]
    live = positions < count[:, None]
    sizes = xp.where(live, stack[:, :, _SIZE], xp.zeros_like(stack[:, :, _SIZE]))
    ends = xp.astype(xp.cumulative_sum(sizes, axis=1), index_dtype)  # n past the live blocks
    # each entry's block: how many blocks end at or before it (a mark at every end)
    marks = xp.zeros((rows, n + 1), dtype=index_dtype, device=device)
    marks = be.put_each(marks, base // n * (n + 1), ends, xp.ones_like(ends))
    block = xp.cumulative_sum(marks[:, :n], axis=1)
    stats = be.take_each(stack, base, block)  # (rows, n, 5)
    end = xp.take_along_axis(ends, block, axis=1)
    size = stats[:, :, _SIZE]
    return Pool(
        stats[:, :, _A_FIRST],
        stats[:, :, _B_FIRST],
        stats[:, :, _A_REST],
        stats[:, :, _B_REST],
        size,
        end - xp.astype(size, index_dtype),
        end,
    )


def _device(be: Backend, x: Array) -> Any:
    return x.device if be.name == "torch" else None


def block_sum(be: Backend, pool: Pool, u: Array) -> Array:
    """``sum_{j in B(i)} u_j`` for every entry ``i`` (rows of shape ``(rows, n)``)."""
    xp = be.xp
    totals = xp.cumulative_sum(u, axis=1, include_initial=True)
    return be.xp.take_along_axis(totals, pool.end, axis=1) - be.xp.take_along_axis(
        totals, pool.start, axis=1
    )


def nan_rows(be: Backend, x: Array, out: Array) -> Array:
    """``out``, with every entry of a row that holds a NaN or an infinity set to NaN
    (the projections need finite ``x / w``: ``inf - inf`` would pool into some entries
    and not others)."""
    xp = be.xp
    bad = xp.any(~xp.isfinite(x), axis=1, keepdims=True)
    return xp.where(bad, be.const(math.nan, out), out)
