"""Piecewise polynomials and their exact convolution with every kernel.

For ``f`` with breakpoints ``c_1 < ... < c_m`` and polynomial pieces ``p_0, ..., p_m``
(degree <= 2), write ``f = p_0 + sum_i D_i(x) theta(x - c_i)`` with the jump polynomial
``D_i = p_i - p_{i-1} = sum_j b_ij (x - c_i)^j``. Convolution gives, with
``t_i = (x - c_i) / w`` and ``P_j(t) = E[(t - U)_+^j]``,

    g(x) = f(x) + a_{0,2} w^2 E[U^2] + sum_i sum_j b_ij w^j [P_j(t_i) - t_i^j theta(t_i)].

The bracket is the kernel's tail on the far side of the breakpoint, so it decays as
``|t_i|`` grows: far from every breakpoint ``g`` is ``f`` plus tiny terms, and nothing
large cancels (a naive sum of smoothed ramps loses ``eps * |x|`` to cancellation).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from ._backend import Array, Backend, as_float_array, finish
from ._kernels import Cauchy, Kernel, _sign_consistent_reflection, cauchy_g
from ._polynomials import horner

_MAX_DEGREE = 2


class Piecewise:
    """A piecewise polynomial function of one variable (degree <= 2 per piece).

    Parameters
    ----------
    breakpoints : sequence of float
        Strictly increasing finite breakpoints ``c_1 < ... < c_m``.
    pieces : sequence of sequences of float
        ``m + 1`` polynomials, each as coefficients in ascending powers of ``x``:
        ``pieces[0]`` holds on ``x < c_1``, ``pieces[i]`` on ``c_i <= x < c_{i+1}``,
        ``pieces[m]`` on ``x >= c_m`` (right-continuous).

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> relu = mol.Piecewise(breakpoints=[0.0], pieces=[[0.0], [0.0, 1.0]])
    >>> relu(np.array([-1.0, 2.0]))
    array([0., 2.])
    >>> g = mol.smooth(relu, kernel="logistic", width=1.0)  # = softplus
    >>> float(g(np.array(0.0)))  # log 2
    0.6931471805599453
    """

    def __init__(self, breakpoints: Sequence[float], pieces: Sequence[Sequence[float]]) -> None:
        try:
            points = tuple(float(c) for c in breakpoints)
        except (TypeError, ValueError):
            raise TypeError("breakpoints must be a sequence of real numbers") from None
        if not all(math.isfinite(c) for c in points):
            raise ValueError(f"breakpoints must be finite; got {points}")
        if any(b <= a for a, b in itertools.pairwise(points)):
            raise ValueError(f"breakpoints must be strictly increasing; got {points}")
        if len(pieces) != len(points) + 1:
            raise ValueError(
                f"pieces must hold len(breakpoints) + 1 = {len(points) + 1} polynomials; "
                f"got {len(pieces)}"
            )
        polys = []
        for piece in pieces:
            try:
                coefficients = [float(a) for a in piece]
            except (TypeError, ValueError):
                raise TypeError(
                    "each piece must be a sequence of real coefficients (ascending powers)"
                ) from None
            if not coefficients or not all(math.isfinite(a) for a in coefficients):
                raise ValueError(f"each piece needs finite coefficients; got {list(piece)}")
            while len(coefficients) > 1 and coefficients[-1] == 0.0:
                coefficients.pop()
            if len(coefficients) - 1 > _MAX_DEGREE:
                raise ValueError(
                    f"pieces must have degree <= {_MAX_DEGREE} for the exact engine; got "
                    f"{list(piece)}"
                )
            polys.append(tuple(coefficients + [0.0] * (_MAX_DEGREE + 1 - len(coefficients))))
        self.breakpoints: tuple[float, ...] = points
        self.pieces: tuple[tuple[float, ...], ...] = tuple(polys)

    def __repr__(self) -> str:
        pieces = [list(_trim(p)) for p in self.pieces]
        return f"Piecewise(breakpoints={list(self.breakpoints)}, pieces={pieces})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Piecewise)
            and self.breakpoints == other.breakpoints
            and self.pieces == other.pieces
        )

    def __hash__(self) -> int:
        return hash((self.breakpoints, self.pieces))

    # -- structure -----------------------------------------------------------------
    @property
    def degree(self) -> int:
        """Highest degree over all pieces."""
        return max(len(_trim(p)) - 1 for p in self.pieces)

    def jumps(self) -> list[tuple[float, tuple[float, float, float]]]:
        """``(c_i, (b_0, b_1, b_2))`` with ``p_i - p_{i-1} = sum_j b_j (x - c_i)^j``."""
        out: list[tuple[float, tuple[float, float, float]]] = []
        for c, left, right in zip(self.breakpoints, self.pieces, self.pieces[1:]):
            d = [after - before for before, after in zip(left, right)]
            out.append((c, (d[0] + d[1] * c + d[2] * c * c, d[1] + 2.0 * d[2] * c, d[2])))
        return out

    def value_jumps(self) -> list[float]:
        """Height ``f(c+) - f(c-)`` of the jump at each breakpoint (0 where continuous)."""
        return [b[0] for _, b in self.jumps()]

    @property
    def is_continuous(self) -> bool:
        """True when no piece boundary has a jump in value."""
        return all(h == 0.0 for h in self.value_jumps())

    def lipschitz(self) -> float:
        """Largest ``|f'|`` over all pieces (``inf`` if an unbounded piece is quadratic)."""
        bound = 0.0
        edges = (-math.inf, *self.breakpoints, math.inf)
        for (lo, hi), (_, a1, a2) in zip(itertools.pairwise(edges), self.pieces):
            if a2 != 0.0 and not (math.isfinite(lo) and math.isfinite(hi)):
                return math.inf
            ends = [a1] if a2 == 0.0 else [a1 + 2.0 * a2 * lo, a1 + 2.0 * a2 * hi]
            bound = max(bound, *(abs(e) for e in ends))
        return bound

    def bounds(self) -> tuple[float, float] | None:
        """``(inf f, sup f)`` when ``f`` is bounded (constant outer pieces), else None."""
        if self.pieces[0][1:] != (0.0, 0.0) or self.pieces[-1][1:] != (0.0, 0.0):
            return None
        values = [self.pieces[0][0], self.pieces[-1][0]]
        for (lo, hi), (a0, a1, a2) in zip(itertools.pairwise(self.breakpoints), self.pieces[1:-1]):
            points = [lo, hi]
            if a2 != 0.0 and lo < -a1 / (2.0 * a2) < hi:
                points.append(-a1 / (2.0 * a2))
            values += [a0 + a1 * p + a2 * p * p for p in points]
        return min(values), max(values)

    def derivative(self) -> Piecewise:
        """The piecewise derivative (jumps in value become plain breakpoints)."""
        pieces = [[a1, 2.0 * a2] for _, a1, a2 in self.pieces]
        return Piecewise(self.breakpoints, pieces)

    # -- evaluation ------------------------------------------------------------------
    def __call__(self, x: Array) -> Array:
        """Evaluate the (hard, non-smooth) function."""
        be, x_c, dtype = as_float_array(x)
        return finish(be, self._evaluate(be, x_c), dtype)

    def _evaluate(self, be: Backend, x: Array) -> Array:
        xp = be.xp
        out = _polynomial(be, self.pieces[0], x)
        for c, piece in zip(self.breakpoints, self.pieces[1:]):
            out = xp.where(x >= c, _polynomial(be, piece, x), out)
        return xp.where(xp.isnan(x), x, out)


def _trim(p: Sequence[float]) -> tuple[float, ...]:
    p = list(p)
    while len(p) > 1 and p[-1] == 0.0:
        p.pop()
    return tuple(p)


def _polynomial(be: Backend, coefficients: Sequence[float], x: Array) -> Array:
    value = horner(coefficients, x)
    return be.const(value, x) if isinstance(value, float) else value


def check_admissible(f: Piecewise, kernel: Kernel) -> None:
    """Raise ``ValueError`` where ``f * k_w`` diverges or has no closed form here."""
    if not isinstance(kernel, Cauchy):
        return
    if f.degree > 1:
        raise ValueError(
            "kernel='cauchy': the closed form covers pieces of degree <= 1 only (the Cauchy "
            "kernel has no second moment); use another kernel"
        )
    if f.pieces[0][1] != f.pieces[-1][1]:
        raise ValueError(
            "kernel='cauchy' diverges for this function: its outer pieces have different "
            f"slopes ({f.pieces[0][1]} and {f.pieces[-1][1]}), so it grows like |x| and the "
            "Cauchy kernel has no mean (E|U| = inf). ReLU, abs, hinge and leaky ReLU are such "
            "functions; step, sign, clip and the staircases are fine"
        )


def convolve(be: Backend, f: Piecewise, x: Array, width: float, kernel: Kernel) -> Array:
    """``(f * k_w)(x)`` exactly, for a validated width and an admissible kernel."""
    xp = be.xp
    out = f._evaluate(be, x)
    quadratic_start = f.pieces[0][2]
    if quadratic_start:
        out = out + quadratic_start * width * width * kernel.second_moment
    cauchy = isinstance(kernel, Cauchy)
    ramps = []
    for c, b in f.jumps():
        t = (x - c) / width
        s, right = _sign_consistent_reflection(be, t)
        for j, b_j in enumerate(b):
            if b_j == 0.0:
                continue
            if cauchy and j == 1:
                ramps.append((c, b_j, t, s))
                continue
            out = out + (b_j * width**j) * kernel._beyond(be, s, right, j)
    if ramps:
        out = out + _cauchy_ramps(be, ramps, width)
    bounds = f.bounds()
    if bounds is not None:
        # a kernel average of f lies within f's range; where w is much wider than the
        # breakpoint spacing the tails cancel to about eps * w, and this keeps the
        # result inside the range (clip stays within [lower, upper])
        low, high = be.const(bounds[0], out), be.const(bounds[1], out)
        out = xp.where(out < low, low, xp.where(out > high, high, out))
    return xp.where(xp.isnan(x), x, out)


def _cauchy_ramps(be: Backend, ramps: list[tuple[float, float, Array, Array]], width: float) -> Any:
    """Sum of slope changes smoothed by the Cauchy kernel (principal value).

    Each ramp uses the regularized tail ``R(t) = -(g(t) + log1p(t^2) / 2) / pi`` with
    ``g(t) = |t| arctan(1 / |t|)``; the slope changes sum to zero (checked by
    :func:`check_admissible`), so the logarithms are taken in differences against the
    first ramp, ``log1p(t_i^2) - log1p(t_0^2)``, written as ``log1p`` of a ratio where
    that difference is small.
    """
    c0, _, t0, s0 = ramps[0]
    g0 = cauchy_g(be, s0)
    total = None
    for c, b, t, s in ramps[1:]:
        delta = (c0 - c) / width  # t - t0
        log_difference = _log1p_square_difference(be, t, t0, delta)
        term = (-b * width / math.pi) * ((cauchy_g(be, s) - g0) + 0.5 * log_difference)
        total = term if total is None else total + term
    return 0.0 if total is None else total


def _log1p_square(be: Backend, t: Array) -> Array:
    """``log1p(t^2)`` without overflowing ``t^2``."""
    xp = be.xp
    big = xp.abs(t) > 1.0
    small_t = xp.where(big, be.const(0.0, t), t)
    big_t = xp.where(big, t, be.const(2.0, t))
    inverse = 1.0 / big_t  # squared after inverting: inf * inf would poison the gradient
    big_value = 2.0 * xp.log(xp.abs(big_t)) + xp.log1p(inverse * inverse)
    return xp.where(big, big_value, xp.log1p(small_t * small_t))


def _log1p_square_difference(be: Backend, t: Array, t0: Array, delta: float) -> Array:
    """``log1p(t^2) - log1p(t0^2)`` given ``delta = t - t0`` exactly.

    ``(1 + t^2) / (1 + t0^2) = 1 + z`` with ``z = delta (2 t0 + delta) / (1 + t0^2)``,
    written in ``v = 1 / t0`` for ``|t0| > 1`` so that ``t0 = ±inf`` gives ``z = 0``.
    ``log1p(z)`` is used where ``z > -1/2``; otherwise the two logs differ by more than
    ``log 2`` and their direct difference is well conditioned.
    """
    xp = be.xp
    big = xp.abs(t0) > 1.0
    v = 1.0 / xp.where(big, t0, be.const(2.0, t0))
    t0_small = xp.where(big, be.const(0.0, t0), t0)
    z = xp.where(
        big,
        delta * v * (2.0 + delta * v) / (1.0 + v * v),
        delta * (2.0 * t0_small + delta) / (1.0 + t0_small * t0_small),
    )
    use_ratio = z > -0.5
    ratio = xp.log1p(xp.where(use_ratio, z, be.const(0.0, z)))
    direct = _log1p_square(be, t) - _log1p_square(be, t0)
    return xp.where(use_ratio, ratio, direct)
