r"""Sparse argmax: sparsemax and entmax-1.5 of ``x / w`` and their smooth max (array-API code).

Both are the gradient of a regularized max, :math:`\max_\Omega(z) = \max_{p \in \Delta}
\langle p, z\rangle + H(p)`, with the Tsallis entropies ``H`` of order 2 (sparsemax,
Martins & Astudillo 2016) and 3/2 (entmax-1.5, Peters et al. 2019) in place of
Shannon's (which gives logsumexp and the softmax):

* sparsemax: :math:`p = [z - \tau]_+`, ``H(p) = (1 - sum p^2)/2``, ``H`` in
  ``[0, (1 - 1/n)/2]``;
* entmax-1.5: :math:`p = [z/2 - \tau]_+^2`, ``H(p) = 4/3 (1 - sum p^{3/2})``, ``H`` in
  ``[0, 4/3 (1 - n^{-1/2})]``.

So ``w max_Omega(x / w)`` lies between ``max x`` and ``max x + w sup H``, and its
gradient ``p`` has exact zeros (compact support). The threshold ``tau`` is exact, from
a sort: for sparsemax ``tau = max_k (sum of the k largest - 1)/k``; for entmax-1.5 the
largest ``k`` whose threshold ``tau_k = mean_k - sqrt(1/k - var_k)`` is at most the
``k``-th largest (Peters et al. 2019, Algorithm 2).

The Jacobians are the support-restricted centrings ``(diag(s) - s s^T / sum s) / w``
with ``s = 1[p > 0]`` (sparsemax) and ``s = sqrt(p)`` (entmax-1.5); the softmax's is the
same with ``s = p``. Inputs are shifted by the max (entries more than ``1`` (sparsemax)
or ``2`` (entmax) below it in units of ``w`` never carry weight, so they are clamped
there: no ``-inf`` or overflow reaches the sort's sums); ``+inf`` entries share the
mass equally (the limit), an all ``-inf`` slice gives zeros, NaN makes its slice NaN.
"""

from __future__ import annotations

import math
from typing import Any

from .._backend import Array, Backend
from .formula import Reduction
from .lse import shifts

SPARSEMAX = "sparsemax"
ENTMAX15 = "entmax15"

# z = (x - max)/w below these never carries weight (p_max <= 1 puts tau above -1 for
# sparsemax and z/2 - tau <= 1 above -1 for entmax): clamped there, exactly as inert
_FLOOR = {SPARSEMAX: -2.0, ENTMAX15: -3.0}


def regularizer_range(method: str, n: int) -> float:
    """``sup H`` over the simplex of ``n`` entries: the bound of ``max_Omega - max``."""
    if n <= 1:
        return 0.0
    if method == SPARSEMAX:
        return 0.5 * (1.0 - 1.0 / n)
    return 4.0 / 3.0 * (1.0 - 1.0 / math.sqrt(n))


def _rows(be: Backend, z: Array, axes: tuple[int, ...]) -> tuple[Array, tuple[int, ...]]:
    """``z`` with the reduced axes moved last and flattened into one, and the kept shape
    that a per-row result (shape ``(..., 1)``) reshapes to."""
    xp = be.xp
    kept = tuple(1 if a in axes else int(s) for a, s in enumerate(z.shape))
    if len(axes) == 1 and axes[0] == z.ndim - 1:
        return z, kept
    others = tuple(a for a in range(z.ndim) if a not in axes)
    moved = xp.permute_dims(z, others + axes)
    batch = tuple(int(z.shape[a]) for a in others)
    n = 1
    for a in axes:  # a loop, not math.prod(generator): torch.compile traces it
        n *= int(z.shape[a])
    return xp.reshape(moved, (*batch, n)), kept


def _shifted(be: Backend, x: Array, axes: tuple[int, ...], w: Any, method: str) -> Array:
    """``(x - max)/w`` clamped below at the inert floor (see the module doc); 0 at the
    ``+inf`` entries of a ``+inf`` max."""
    xp = be.xp
    _, shift, beyond = shifts(be, x, axes)
    z = xp.clip((x - shift) - beyond, max=0.0) / w
    return xp.maximum(z, be.const(_FLOOR[method], z))  # NaN stays NaN


def _threshold(be: Backend, z: Array, axes: tuple[int, ...], method: str) -> Array:
    """``tau`` over ``axes`` (kept) of the shifted, clamped ``z`` (``z/2`` for entmax)."""
    xp = be.xp
    rows, kept = _rows(be, z, axes)
    n = int(rows.shape[-1])
    srt = xp.sort(rows, axis=-1, descending=True)
    k = xp.arange(n, dtype=srt.dtype, device=srt.device if be.name == "torch" else None) + 1.0
    total = xp.cumulative_sum(srt, axis=-1)
    if method == SPARSEMAX:
        tau = xp.max((total - 1.0) / k, axis=-1, keepdims=True)
    else:
        mean = total / k
        var = xp.cumulative_sum(srt * srt, axis=-1) / k - mean * mean
        gap = xp.clip(1.0 / k - var, min=0.0)
        taus = mean - xp.sqrt(gap)
        support = xp.sum(xp.astype(taus <= srt, srt.dtype), axis=-1, keepdims=True)
        tau = xp.sum(xp.where(k == support, taus, be.const(0.0, taus)), axis=-1, keepdims=True)
        first = srt[..., :1]  # NaN in a slice makes every entry of it NaN (the shift)
        tau = xp.where(xp.isnan(first), first, tau)
    return xp.reshape(tau, kept)


def _solve(be: Backend, x: Array, axes: tuple[int, ...], w: Any, method: str) -> tuple[Array, ...]:
    """``(m, z, p)``: the max, the shifted ``z = (x - m)/w`` (clamped) and the
    probabilities."""
    xp = be.xp
    m = xp.max(x, axis=axes, keepdims=True)
    z = _shifted(be, x, axes, w, method)
    y = z * 0.5 if method == ENTMAX15 else z
    p = xp.clip(y - _threshold(be, y, axes, method), min=0.0)
    if method == ENTMAX15:
        p = p * p
    zero = be.const(0.0, p)
    return m, z, xp.where(m == -math.inf, zero, p)  # an all -inf slice weighs nothing


def probabilities(be: Backend, x: Array, axes: tuple[int, ...], w: Any, method: str) -> Array:
    """sparsemax or entmax-1.5 of ``x / w`` over ``axes``."""
    return _solve(be, x, axes, w, method)[2]


def _sparsemax(be: Backend, x: Array, axes: tuple[int, ...], w: Any) -> Array:
    return probabilities(be, x, axes, w, SPARSEMAX)


def _entmax(be: Backend, x: Array, axes: tuple[int, ...], w: Any) -> Array:
    return probabilities(be, x, axes, w, ENTMAX15)


def _centred(be: Backend, s: Array, t: Array, axes: tuple[int, ...], w: Any) -> Array:
    """``(diag(s) - s s^T / sum s) t / w``: the (symmetric) Jacobian times ``t``."""
    xp = be.xp
    total = xp.sum(s, axis=axes, keepdims=True)
    inner = xp.sum(s * t, axis=axes, keepdims=True)
    return s * (t - inner / xp.where(total > 0, total, be.const(1.0, total))) / w


def _sparsemax_tangent(be: Backend, p: Array, t: Array, axes: tuple[int, ...], w: Any) -> Array:
    return _centred(be, _support(be, p), t, axes, w)


def _entmax_tangent(be: Backend, p: Array, t: Array, axes: tuple[int, ...], w: Any) -> Array:
    return _centred(be, _root(be, p), t, axes, w)


def _support(be: Backend, p: Array) -> Array:
    return be.xp.astype(p > 0, p.dtype)


def _root(be: Backend, p: Array) -> Array:
    # sqrt(p), 0 at p = 0 with a zero derivative there (double where: no 1/sqrt(0))
    xp = be.xp
    positive = p > 0
    return xp.where(positive, xp.sqrt(xp.where(positive, p, be.const(1.0, p))), be.const(0.0, p))


def _sparsemax_width_slope(be: Backend, p: Array, axes: tuple[int, ...], w: Any) -> Array:
    # d p / d w = -(1/w) s (p - 1/|S|): on the support z = p + tau
    xp = be.xp
    s = _support(be, p)
    size = xp.sum(s, axis=axes, keepdims=True)
    return -(s / w) * (p - 1.0 / xp.where(size > 0, size, be.const(1.0, size)))


def _entmax_width_slope(be: Backend, p: Array, axes: tuple[int, ...], w: Any) -> Array:
    # d p / d w = -(2/w) s (s - 1/sum s) with s = sqrt(p): on the support z = 2 (s + tau)
    xp = be.xp
    s = _root(be, p)
    total = xp.sum(s, axis=axes, keepdims=True)
    return -(2.0 / w) * s * (s - 1.0 / xp.where(total > 0, total, be.const(1.0, total)))


def _max_value(be: Backend, x: Array, axes: tuple[int, ...], w: Any, method: str) -> Array:
    """``w max_Omega(x / w) = m + w (sum p z + H(p))`` with ``z = (x - m)/w <= 0``: the
    definition itself, in which a one-hot ``p`` gives exactly ``m`` (``2 tau + 2/3 sum
    p^{3/2} + 4/3``, its closed form on the support, cancels to round-off there). The
    gap ``sum p z + H(p)`` is at least 0; its round-off below 0 is clamped."""
    xp = be.xp
    m, z, p = _solve(be, x, axes, w, method)
    entropy = _sparsemax_entropy if method == SPARSEMAX else _entmax_entropy
    inner = xp.sum(p * xp.where(p > 0, z, be.const(0.0, z)), axis=axes, keepdims=True)
    gap = xp.clip(inner + entropy(be, p, axes), min=0.0)
    finite = xp.isfinite(m)
    out = xp.where(finite, m, be.const(0.0, m)) + w * xp.where(finite, gap, be.const(0.0, gap))
    return xp.where(finite, out, m)  # a +-inf or NaN max: itself


def _sparsemax_max(be: Backend, x: Array, axes: tuple[int, ...], w: Any) -> Array:
    return _max_value(be, x, axes, w, SPARSEMAX)


def _entmax_max(be: Backend, x: Array, axes: tuple[int, ...], w: Any) -> Array:
    return _max_value(be, x, axes, w, ENTMAX15)


def _sparsemax_entropy(be: Backend, p: Array, axes: tuple[int, ...], w: Any = None) -> Array:
    return 0.5 * (1.0 - be.xp.sum(p * p, axis=axes, keepdims=True))


def _entmax_entropy(be: Backend, p: Array, axes: tuple[int, ...], w: Any = None) -> Array:
    return (4.0 / 3.0) * (1.0 - be.xp.sum(p * _root(be, p), axis=axes, keepdims=True))


_RULES = {
    SPARSEMAX: (
        _sparsemax,
        _sparsemax_width_slope,
        _sparsemax_tangent,
        _sparsemax_max,
        _sparsemax_entropy,
    ),
    ENTMAX15: (_entmax, _entmax_width_slope, _entmax_tangent, _entmax_max, _entmax_entropy),
}


def argmax(width: Any, method: str) -> Reduction:
    """sparsemax or entmax-1.5 of ``x / w``: its own weights, with the centring Jacobian."""
    values, width_slope, tangent, _, _ = _RULES[method]
    return Reduction(values, values, width_slope, width, True, tangent_rule=tangent,
                     whole_slice=True)  # fmt: skip


def smooth_max(width: Any, method: str) -> Reduction:
    """``w max_Omega(x / w)``: gradient the sparse probabilities, width derivative ``H(p)``."""
    values, _, _, value, entropy = _RULES[method]
    return Reduction(value, values, entropy, width, output_is_weights=False, whole_slice=True)
