r"""Soft ranks, sorts and selections of rows (array-API code).

Every function here works on rows: ``x`` of shape ``(rows, n)``, ``n >= 1``.

* :func:`projection`: the permutahedron projections of Blondel et al. (2020). With
  :math:`\rho = (n, n-1, \dots, 1)` and strength ``eps``, the soft rank is the
  projection of ``x / eps`` onto the permutahedron of ``rho`` (``"l2"``; ``"kl"``: the
  KL projection of ``x / eps`` onto that of ``log rho``, exponentiated), the soft sort
  the projection of ``rho / eps`` onto the permutahedron of ``x``, and the soft top-k
  mask the projection of ``x / eps`` onto the capped simplex
  :math:`\{m \in [0, 1]^n: \sum m = k\}`, the permutahedron of ``(1,...,1,0,...,0)``.
  Each is a descending sort, one isotonic regression (:mod:`.isotonic`) and, for the
  ranks, the inverse permutation: ``O(n log n)``; the Jacobian is identity minus a
  block average (ranks) or a block average (sorts), ``O(n)``.
* :func:`pairwise_rank`: :math:`r_i = \tfrac12 + \sum_j K((x_i - x_j)/w)`, the expected
  rank when every comparison is smoothed by the kernel's CDF ``K``, evaluated over
  column chunks so that memory stays ``O(rows n chunk)``; its Jacobian
  :math:`\partial r_i/\partial x_j = (\delta_{ij} \sum_l k_{il} - k_{ij})/w` is
  symmetric for the library's symmetric kernels.
* :func:`bitonic_stages` and :func:`soft_permutation`: the comparators of a bitonic
  sorting network, and the doubly stochastic matrix of the network whose comparators
  mix their two inputs with weights ``K((b - a)/w)`` and ``K((a - b)/w)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import Array, Backend
from . import isotonic
from .formula import Formula, Transform

RANK, SORT = "rank", "sort"


@dataclass(frozen=True)
class Projection:
    """What :func:`projection` computes: ``target`` is ``"rank"`` (ranks and top-k
    masks: the projection of ``sign x / eps`` onto the permutahedron of ``weights``) or
    ``"sort"`` (the projection of ``rho / eps`` onto that of ``sign x``, times
    ``sign``); ``weights(n)`` is the permutahedron's vertex as a decreasing NumPy
    vector; ``width`` a float or an array of one width per row (shape ``(rows, 1)``)."""

    kind: str
    target: str
    width: Any
    sign: float
    weights: Any


def ranks_vertex(n: int) -> np.ndarray:
    """``(n, n - 1, ..., 1)``: the vertex of the permutahedron of ranks."""
    return np.arange(n, 0, -1, dtype=np.float64)


def _row(be: Backend, values: np.ndarray, like: Array) -> Array:
    return be.const(values[None, :], like)


def _take(be: Backend, values: Array, index: Array) -> Array:
    return be.xp.take_along_axis(values, index, axis=1)


def _projection_forward(be: Backend, x: Array, p: Projection) -> tuple[Array, tuple[Array, ...]]:
    xp = be.xp
    n = x.shape[1]
    vertex = _row(be, p.weights(n), x)
    scale = p.sign / p.width
    if p.target == RANK:
        theta = x * scale
        order = xp.argsort(theta, axis=1, descending=True, stable=True)
        s = _take(be, theta, order)
        b = xp.broadcast_to(vertex, s.shape)
        pool = isotonic.pav(be, s, b, p.kind, linear_b=p.kind == isotonic.KL)
        relative = s - pool.a_first  # exact within a block of close entries
        if p.kind == isotonic.L2:
            # s - v with v = mean_B s - mean_B w, as (s - mean_B s) + mean_B w: a block of
            # one entry gives its vertex entry exactly
            out = (relative - pool.a_rest / pool.size) + (pool.b_first + pool.b_rest / pool.size)
            q = 1.0 / pool.size
        else:  # exp(s - v) with v = lse_B s - log sum_B w: softmax_B(s) sum_B w
            q = xp.exp(relative - pool.a_rest)
            out = q * pool.b_rest
        inverse = xp.argsort(order, axis=1)
        out = _take(be, out, inverse)
        factor = out if p.kind == isotonic.KL else xp.ones_like(out[:, :1])
        return out, (order, inverse, pool.start, pool.end, q, factor)
    values = x * p.sign
    order = xp.argsort(values, axis=1, descending=True, stable=True)
    s = _take(be, values, order)
    a = xp.broadcast_to(vertex / p.width, s.shape)
    pool = isotonic.pav(be, a, s, p.kind)
    # a - v with v = mean_B a - mean_B s (l2) or lse_B a - lse_B s (kl), from the
    # block's first entries: a block of one entry gives that entry exactly
    if p.kind == isotonic.L2:
        out = ((a - pool.a_first) - pool.a_rest / pool.size) + (
            pool.b_first + pool.b_rest / pool.size
        )
        q = 1.0 / pool.size
    else:
        out = ((a - pool.a_first) - pool.a_rest) + (pool.b_first + pool.b_rest)
        q = xp.exp((s - pool.b_first) - pool.b_rest)  # the block's softmax of s
    inverse = xp.argsort(order, axis=1)
    signed = out * p.sign + 0.0  # + 0.0: no -0.0 from a descending sort's sign
    return signed, (order, inverse, pool.start, pool.end, q, xp.ones_like(out[:, :1]))


def _pool_of(residuals: tuple[Array, ...]) -> isotonic.Pool:
    _, _, start, end, _, _ = residuals
    return isotonic.Pool(None, None, None, None, None, start, end)


def _projection_jvp(be: Backend, residuals: tuple[Array, ...], t: Array, p: Projection) -> Array:
    order, inverse, _, _, q, factor = residuals
    pool = _pool_of(residuals)
    ts = _take(be, t, order)
    if p.target == RANK:  # (sign / eps) factor (t - P^T B_q P t)
        pooled = ts - isotonic.block_sum(be, pool, q * ts)
        return factor * _take(be, pooled, inverse) * (p.sign / p.width)
    return isotonic.block_sum(be, pool, q * ts)  # B_q P t


def _projection_vjp(be: Backend, residuals: tuple[Array, ...], g: Array, p: Projection) -> Array:
    order, inverse, _, _, q, factor = residuals
    pool = _pool_of(residuals)
    if p.target == RANK:  # (sign / eps) (u - P^T q B P u), u = factor g
        us = _take(be, factor * g, order)
        pooled = us - q * isotonic.block_sum(be, pool, us)
        return _take(be, pooled, inverse) * (p.sign / p.width)
    return _take(be, q * isotonic.block_sum(be, pool, g), inverse)  # P^T B_q^T g


def projection(kind: str, target: str, width: Any, sign: float, weights: Any) -> Transform:
    """The soft rank / top-k mask (``target="rank"``) or soft sort (``"sort"``) of rows
    by permutahedron projection (see the module doc)."""
    data = Projection(kind, target, width, sign, weights)
    return Transform(_projection_forward, _projection_jvp, _projection_vjp, data, stepwise=True)


# -- pairwise ranks ---------------------------------------------------------------------

_CHUNK_ELEMENTS = 1 << 22  # at most about 4M pairwise terms at a time (32 MB in float64)


@dataclass(frozen=True)
class Pairwise:
    """The step formula ``K(d / w)`` (its slope is the density ``k(d/w)/w``), the sign
    of the comparison (``-1``: descending ranks) and the chunk of columns."""

    step: Formula
    sign: float
    chunk: int


def _difference(be: Backend, a: Array, b: Array) -> Array:
    """``a - b``, 0 where ``a == b`` (an entry at ``inf`` against itself: no ``inf - inf``)."""
    xp = be.xp
    return xp.where(a == b, be.const(0.0, a), a - b)


def _columns(be: Backend, x: Array, chunk: int) -> tuple[Array, np.ndarray, int]:
    """``x``'s columns in chunks, shape ``(rows, chunks, chunk)``, the padding mask."""
    xp = be.xp
    rows, n = x.shape
    count = -(-n // chunk)
    padded = count * chunk - n
    if padded:
        x = xp.concat([x, xp.zeros((rows, padded), dtype=x.dtype, device=_device(be, x))], axis=1)
    valid = (np.arange(count * chunk) < n).reshape(count, chunk)
    return xp.reshape(x, (rows, count, chunk)), valid, count


def _device(be: Backend, x: Array) -> Any:
    return x.device if be.name == "torch" else None


def _pairwise_sums(be: Backend, x: Array, p: Pairwise, term: Any, t: Array | None) -> Array:
    """``sum_j term(d_ij) [t_i - t_j]`` over column chunks, ``d_ij = sign (x_i - x_j)``."""
    xp = be.xp
    columns, valid, count = _columns(be, x, p.chunk)
    t_columns = None if t is None else _columns(be, t, p.chunk)[0]
    valid_array = be.const(valid.astype(np.float64), x)

    def add(c: Any, total: Array) -> Array:
        d = p.sign * _difference(be, x[:, :, None], columns[:, c][:, None, :])
        terms = term(be, d) * valid_array[c][None, None, :]
        if t is not None and t_columns is not None:
            terms = terms * (t[:, :, None] - t_columns[:, c][:, None, :])
        return total + xp.sum(terms, axis=2)

    (total,) = be.fori_loop(count, lambda c, state: (add(c, state[0]),), (xp.zeros_like(x),))
    return total


def _pairwise_forward(be: Backend, x: Array, p: Pairwise) -> tuple[Array, tuple[Array, ...]]:
    return 0.5 + _pairwise_sums(be, x, p, p.step.value, None), (x,)


def _pairwise_jvp(be: Backend, residuals: tuple[Array, ...], t: Array, p: Pairwise) -> Array:
    # dr_i = sign sum_j k_ij (t_i - t_j) / w; the density's slope rule holds the 1/w
    (x,) = residuals
    return p.sign * _pairwise_sums(be, x, p, p.step.slope, t)


def pairwise_rank(step: Formula, sign: float, rows: int, n: int) -> Transform:
    """``1/2 + sum_j K(sign (x_i - x_j) / w)`` per row; ``step`` is the smooth step
    ``K(x / w)`` of the kernel. The Jacobian is symmetric (symmetric kernels), so the
    transpose is the same rule."""
    chunk = max(1, min(n, _CHUNK_ELEMENTS // max(1, rows * n)))
    data = Pairwise(step, sign, chunk)
    return Transform(_pairwise_forward, _pairwise_jvp, _pairwise_jvp, data)


# -- sorting networks -------------------------------------------------------------------


def bitonic_stages(size: int) -> list[tuple[int, np.ndarray]]:
    """The comparator stages of a bitonic sorting network of ``size`` (a power of 2)
    inputs: ``(j, ascending)`` pairs entry ``i`` with ``i + j`` in blocks of ``2j``;
    ``ascending`` (shape ``(size // (2j), 1)``) says for each block whether the smaller
    value goes first. ``log2(size) (log2(size) + 1) / 2`` stages."""
    stages = []
    k = 2
    while k <= size:
        j = k // 2
        while j >= 1:
            lower = np.arange(0, size, 2 * j)  # the first entry of each block
            stages.append((j, ((lower & k) == 0)[:, None]))
            j //= 2
        k *= 2
    return stages


def padded_size(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(n))) if n > 1 else 1


def pairs(be: Backend, x: Array, j: int) -> tuple[Array, Array]:
    """The two inputs of each comparator of a stage: ``x`` of shape ``(rows, size, ...)``
    as ``(rows, size // (2j), j, ...)`` twice."""
    xp = be.xp
    shape = tuple(x.shape)
    blocks = xp.reshape(x, (shape[0], shape[1] // (2 * j), 2, j, *shape[2:]))
    return blocks[:, :, 0], blocks[:, :, 1]


def unpairs(be: Backend, first: Array, second: Array) -> Array:
    """The inverse of :func:`pairs`."""
    xp = be.xp
    joined = xp.stack([first, second], axis=2)
    shape = tuple(joined.shape)
    return xp.reshape(joined, (shape[0], shape[1] * 2 * shape[3], *shape[4:]))


def _mix(be: Backend, alpha: Array, a: Array, b: Array) -> Array:
    """``alpha a + (1 - alpha) b``, exact where ``alpha`` is 0 or 1 or ``a == b``, with
    infinite entries kept out of the arithmetic (double where: no ``0 * inf`` in the
    value or the gradient); NaN stays NaN."""
    xp = be.xp
    zero = be.const(0.0, a)
    a_f, b_f = xp.where(xp.isinf(a), zero, a), xp.where(xp.isinf(b), zero, b)
    inner = alpha * a_f + (1.0 - alpha) * b_f
    return xp.where(a == b, a, xp.where(alpha == 1.0, a, xp.where(alpha == 0.0, b, inner)))


def soft_permutation(be: Backend, x: Array, step: Formula) -> Array:
    """The soft permutation matrix ``P`` (shape ``(rows, n, n)``, ``P[r, i, j]`` the
    weight of entry ``j`` at sorted position ``i``, ascending) of the bitonic network
    whose comparators mix ``a`` and ``b`` with ``alpha = K((b - a)/w)`` (the smaller
    first): a product of doubly stochastic matrices, so every row and column sums to 1.
    Rows are padded with ``+inf`` to a power of 2; a flag that mixes like the values
    keeps the padding after every entry, ``+inf`` entries included."""
    xp = be.xp
    rows, n = x.shape
    size = padded_size(n)
    if size > n:
        pad = be.const(np.full((1, size - n), np.inf), x)
        x = xp.concat([x, xp.broadcast_to(pad, (rows, size - n))], axis=1)
    flags = be.const((np.arange(size) >= n).astype(np.float64)[None, :], x)
    flags = xp.broadcast_to(flags, (rows, size))
    matrix = xp.broadcast_to(be.const(np.eye(size), x)[None], (rows, size, size))
    half = be.const(0.5, x)
    for j, ascending in bitonic_stages(size):
        a, b = pairs(be, x, j)
        fa, fb = pairs(be, flags, j)
        alpha = step.value(be, _difference(be, b, a))  # P(a is the smaller)
        by_flag = xp.where(fa < fb, be.const(1.0, x), xp.where(fa > fb, be.const(0.0, x), half))
        alpha = xp.where(a == b, by_flag, alpha)
        up = be.const(ascending.astype(np.float64), x)[None]
        alpha = up * alpha + (1.0 - up) * (1.0 - alpha)  # descending blocks: larger first
        x = unpairs(be, _mix(be, alpha, a, b), _mix(be, 1.0 - alpha, a, b))
        flags = unpairs(be, alpha * fa + (1.0 - alpha) * fb, (1.0 - alpha) * fa + alpha * fb)
        ma, mb = pairs(be, matrix, j)
        al = alpha[..., None]
        matrix = unpairs(be, al * ma + (1.0 - al) * mb, (1.0 - al) * ma + al * mb)
    return matrix[:, :n, :n]
