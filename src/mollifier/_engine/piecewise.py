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
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._backend import Array, Backend, as_float_array, finish, known_values
from .._kernels import Kernel, _sign_consistent_reflection, scaled
from .._polynomials import horner
from .bound import Bound
from .formula import Formula, nan_where_nan

_MAX_DEGREE = 2
_PIECE = "each piece must be a sequence of real coefficients (ascending powers)"


def _reals(values: Any, message: str) -> tuple[float, ...]:
    """``values`` (a sequence of real numbers, not a string) as floats, or ``TypeError``."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{message}; got {type(values).__name__}")
    out = []
    for value in values:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{message}; got an entry {value!r} of type {type(value).__name__}")
        out.append(float(value))
    return tuple(out)


def _finite(value: float) -> bool:
    # a comparison rather than math.isfinite, which torch.compile(dynamic=True) refuses on
    # the floats it traces as symbols (a shape's numbers, a kernel's moments)
    return -math.inf < value < math.inf


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
        points = _reals(breakpoints, "breakpoints must be a sequence of real numbers")
        if not all(_finite(c) for c in points):
            raise ValueError(f"breakpoints must be finite; got {points}")
        if any(b <= a for a, b in itertools.pairwise(points)):
            raise ValueError(f"breakpoints must be strictly increasing; got {points}")
        if isinstance(pieces, (str, bytes)) or not hasattr(pieces, "__len__"):
            raise TypeError(
                "pieces must be a sequence of polynomials (each a sequence of coefficients in "
                f"ascending powers); got {type(pieces).__name__}"
            )
        if len(pieces) != len(points) + 1:
            raise ValueError(
                f"pieces must hold len(breakpoints) + 1 = {len(points) + 1} polynomials; "
                f"got {len(pieces)}"
            )
        polys = []
        for piece in pieces:
            coefficients = list(_reals(piece, _PIECE))
            if not coefficients or not all(_finite(a) for a in coefficients):
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

    def kinks(self) -> tuple[float, float, tuple[tuple[float, float], ...]] | None:
        """``(a_0, a_1, ((c_i, b_i), ...))`` when ``f(x) = a_0 + a_1 x + sum_i b_i (x -
        c_i)_+`` is continuous with linear pieces, else ``None``. Its smoothing is then
        ``f(x) + sum_i b_i w P_1(-|x - c_i| / w)`` while the breakpoints lie apart (the
        module docstring's tails, the same on both sides for ``j = 1``), with slope
        ``a_1 + sum_i b_i K((x - c_i) / w)``: ReLU, abs, leaky ReLU, hinge, clip."""
        if self.degree > 1 or not self.is_continuous:
            return None
        a0, a1, _ = self.pieces[0]
        return a0, a1, tuple((c, b[1]) for c, b in self.jumps())

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
            if a2 != 0.0 and not (_finite(lo) and _finite(hi)):
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

    def bound(self, kernel: Kernel) -> Bound:
        """The sup-norm error of ``f * k_w - f`` as a function of ``w``.

        From the exact decomposition in the module docstring:
        ``|P_0 - theta| <= 1/2``, ``|P_1(t) - t_+| <= E|U| / 2`` (at ``t = 0``) and
        ``|P_2(t) - t^2 theta(t)| <= E[U^2]``, so the error is at most
        ``sum |jumps| / 2 + w E|U| sum |slope changes| / 2 + w^2 E[U^2] (|a_02| +
        sum |curvature changes|)``. It reproduces the bound of every named piecewise op
        (ReLU ``w E|U| / 2``, abs ``w E|U|``, clip ``w E|U|``, step ``1/2``).
        """
        jumps = slopes = curvatures = 0.0
        for _, (b0, b1, b2) in self.jumps():
            jumps += abs(b0)
            slopes += abs(b1)
            curvatures += abs(b2)
        curvatures += abs(self.pieces[0][2])
        return Bound(
            constant=jumps / 2.0,
            slope=slopes * kernel.mean_abs / 2.0 if slopes else 0.0,
            curvature=curvatures * kernel.second_moment if curvatures else 0.0,
            description=(
                f"it jumps by {jumps:g} in all: the smoothed value at a jump is the midpoint"
                if jumps
                else "w E|U| sum |slope changes| / 2"
                + (" + w^2 E[U^2] sum |curvature changes|" if curvatures else "")
            ),
        )

    def check_range(self, largest: float, dtype: Any) -> None:
        """Raise ``ValueError`` where a coefficient or a jump of ``f`` is beyond
        ``largest``, the compute dtype's largest float: the smoothing would overflow
        where its value is finite (a jump from ``-1e308`` to ``1.7e308`` is ``inf`` in
        float64, a level of ``1e39`` in float32), a silent wrong answer otherwise."""
        sizes = [abs(a) for piece in self.pieces for a in piece]
        sizes += [abs(b) for _, jump in self.jumps() for b in jump]
        biggest = max(sizes)
        if not biggest <= largest:
            raise ValueError(
                f"the piecewise function's coefficients or jumps reach {biggest:g}, beyond the "
                f"largest {dtype} ({largest:g}): its smoothing would overflow there; smooth "
                "f / s for a scale s and multiply the result by s"
            )

    def check_kernel(self, kernel: Kernel) -> None:
        """Raise ``ValueError`` where ``f * k_w`` diverges or has no closed form here."""
        kernel._check_piecewise(self.degree, (self.pieces[0][1], self.pieces[-1][1]))

    def derivative(self) -> Piecewise:
        """The piecewise derivative (jumps in value become plain breakpoints)."""
        pieces = [[a1, 2.0 * a2] for _, a1, a2 in self.pieces]
        return Piecewise(self.breakpoints, pieces)

    # -- evaluation ------------------------------------------------------------------
    def __call__(self, x: Array) -> Array:
        """Evaluate the (hard, non-smooth) function."""
        be, x_c, dtype = as_float_array(x)
        return finish(be, self._evaluate(be, x_c), dtype)

    def _evaluate(self, be: Backend, x: Array, sides: Sequence[Array] | None = None) -> Array:
        """``f(x)``; ``sides[i]`` (default ``x >= c_i``) says which piece holds at ``c_i``."""
        xp = be.xp
        out = _polynomial(be, self.pieces[0], x)
        for i, (c, piece) in enumerate(zip(self.breakpoints, self.pieces[1:])):
            right = x >= c if sides is None else sides[i]
            out = xp.where(right, _polynomial(be, piece, x), out)
        return xp.where(xp.isnan(x), x, out)


def _trim(p: Sequence[float]) -> tuple[float, ...]:
    p = list(p)
    while len(p) > 1 and p[-1] == 0.0:
        p.pop()
    return tuple(p)


def _polynomial(be: Backend, coefficients: Sequence[float], x: Array) -> Array:
    value = horner(coefficients, x)
    return be.const(value, x) if isinstance(value, float) else value


_CLUSTER_SPAN = 0.25
"""Breakpoint span / width at or below which :func:`convolve` takes the cluster form.

There the breakpoint form's tails, each about ``w`` times a slope change, cancel to
``eps * w`` (``clip(x, 0, 1)`` at ``w = 1e8`` in float32 came out as 0 instead of 1/2);
at the span ``w / 4`` they lose at most a few ulps, and 8-point Gauss-Legendre over each
piece is exact to about ``16^-16`` (the nearest complex singularity of a smooth density
lies one width off the real axis: the Cauchy and sqrt kernels)."""
_CLUSTER_NODES, _CLUSTER_WEIGHTS = (
    tuple(float(v) for v in values) for values in np.polynomial.legendre.leggauss(8)
)


def convolve(be: Backend, f: Piecewise, x: Array, width: Any, kernel: Kernel) -> Array:
    """``(f * k_w)(x)`` exactly, for a validated width and an admissible kernel.

    Two exact forms: one term per breakpoint while the breakpoints lie more than a
    quarter width apart, the cluster form (:func:`_convolve_cluster`) once they lie
    closer. An array width whose values can be read (eager, on the CPU) takes one form
    where it serves every entry; otherwise both are evaluated and chosen entry by entry.
    """
    points = f.breakpoints
    if len(points) < 2:
        return _convolve_apart(be, f, x, width, kernel)
    span = points[-1] - points[0]
    if isinstance(width, float):
        if span <= _CLUSTER_SPAN * width:
            return _convolve_cluster(be, f, x, width, kernel)
        return _convolve_apart(be, f, x, width, kernel)
    known = known_values(width)
    if known is not None and known.size:  # one form, if it serves every entry
        if bool(np.all(span <= _CLUSTER_SPAN * known)):
            return _convolve_cluster(be, f, x, width, kernel)
        if bool(np.all(span > _CLUSTER_SPAN * known)):
            return _convolve_apart(be, f, x, width, kernel)
    # traced, compiled, on a device, or mixed: both forms, chosen entry by entry
    cluster = span <= _CLUSTER_SPAN * width
    return be.xp.where(
        cluster,
        _convolve_cluster(be, f, x, width, kernel),
        _convolve_apart(be, f, x, width, kernel),
    )


def _convolve_apart(be: Backend, f: Piecewise, x: Array, width: Any, kernel: Kernel) -> Array:
    """The breakpoint form of the module docstring: the hard value plus one decaying
    kernel tail per breakpoint and power."""
    # the side of each breakpoint is taken from t_i itself, for the hard part as for the
    # tail: where x - c_i underflows to -0 in t_i (a tiny x, a huge w) both say "right",
    # so the two halves of the jump still add up (step at -1e-38, w = 1e8: 1/2, not 0)
    reflections = []
    for c, b in f.jumps():
        t = scaled(be, x, c, width)
        reflections.append((c, b, t, *_sign_consistent_reflection(be, t)))
    out = f._evaluate(be, x, [right for *_, right in reflections])
    quadratic_start = f.pieces[0][2]
    if quadratic_start:
        out = out + quadratic_start * width * width * kernel.second_moment
    # a kernel without a mean has no finite P_1: its slope changes are summed together,
    # as a principal value (their slopes sum to zero for an admissible f)
    together = not kernel.mean_abs < math.inf  # a comparison: a symbol under dynamic=True
    ramps = []
    for c, b, t, s, right in reflections:
        for j, b_j in enumerate(b):
            if b_j == 0.0:
                continue
            if together and j == 1:
                ramps.append((c, b_j, t))
                continue
            out = out + (b_j * width**j) * kernel._beyond(be, s, right, j)
    if ramps:
        out = out + kernel._ramp_sum(be, ramps, width)
    return _within_range(be, f, x, out)


def _convolve_cluster(be: Backend, f: Piecewise, x: Array, width: Any, kernel: Kernel) -> Array:
    """``f * k_w`` for breakpoints within a few widths of each other.

    With ``S = p_m - p_0`` (the whole change from the first piece to the last) and
    ``phi = f - p_0 - S theta(. - c_m)``, which vanishes outside ``[c_1, c_m)``,

        g(x) = (p_0 * k_w)(x) + (S theta(. - c_m) * k_w)(x) + int phi(s) k_w(x - s) ds:

    a polynomial, one breakpoint term as in the module docstring, and a bounded integral
    over the cluster, by Gauss-Legendre on each piece, split where ``x - s`` crosses
    the kernel's :attr:`~mollifier._kernels.Kernel.density_kinks`. No term is larger
    than the result near the cluster, so nothing cancels.
    """
    xp = be.xp
    first, last = f.pieces[0], f.pieces[-1]
    c_last = f.breakpoints[-1]
    out = _polynomial(be, first, x)
    if first[2]:
        out = out + first[2] * width * width * kernel.second_moment
    change = tuple(b - a for a, b in zip(first, last))
    t = scaled(be, x, c_last, width)
    s, right = _sign_consistent_reflection(be, t)
    out = out + xp.where(right, _polynomial(be, change, x), be.const(0.0, x))
    powers = (
        change[0] + change[1] * c_last + change[2] * c_last * c_last,
        change[1] + 2.0 * change[2] * c_last,
        change[2],
    )
    for j, b_j in enumerate(powers):
        # an admissible f has no net slope change under a kernel without a mean
        if b_j != 0.0:
            out = out + (b_j * width**j) * kernel._beyond(be, s, right, j)
    inner: Any = 0.0
    edges = list(itertools.pairwise(f.breakpoints))
    for (lower, upper), piece in zip(edges, f.pieces[1:-1]):
        bump = tuple(b - a for a, b in zip(first, piece))
        if bump != (0.0, 0.0, 0.0):
            inner = inner + _cluster_integral(be, bump, lower, upper, x, width, kernel)
    out = out + inner / width
    return _within_range(be, f, x, out)


def _cluster_integral(
    be: Backend,
    bump: tuple[float, ...],
    lower: float,
    upper: float,
    x: Array,
    width: Any,
    kernel: Kernel,
) -> Any:
    """``w int_lower^upper bump(s) k_w(x - s) ds`` by 8-point Gauss-Legendre on each
    stretch of ``[lower, upper]`` where the density is smooth in ``s``."""
    xp = be.xp
    kinks = kernel.density_kinks
    if not kinks:
        half, middle = (upper - lower) / 2.0, (upper + lower) / 2.0
        total: Any = 0.0
        for node, weight in zip(_CLUSTER_NODES, _CLUSTER_WEIGHTS):
            point = middle + half * node
            coefficient = half * weight * horner(bump, point)
            total = total + coefficient * kernel._density(be, scaled(be, x, point, width))
        return total
    # s = x - w u falls as u rises: the kinks in u, largest first, are the cuts in s
    low, high = be.const(lower, x), be.const(upper, x)
    cuts = [low]
    for kink in sorted(kinks, reverse=True):
        cut = x - width * kink
        cuts.append(xp.minimum(xp.maximum(cut, low), high))
    cuts.append(high)
    total = 0.0
    for a, b in itertools.pairwise(cuts):
        half, middle = (b - a) / 2.0, (b + a) / 2.0
        for node, weight in zip(_CLUSTER_NODES, _CLUSTER_WEIGHTS):
            point = middle + half * node
            u = scaled(be, x - point, 0.0, width)
            total = total + (weight * half * horner(bump, point)) * kernel._density(be, u)
    return total


def _within_range(be: Backend, f: Piecewise, x: Array, out: Array) -> Array:
    xp = be.xp
    bounds = f.bounds()
    if bounds is not None:
        # a kernel average of f lies within f's range: rounding must not step out of it
        # (clip stays within [lower, upper], step within [0, 1])
        low, high = be.const(bounds[0], out), be.const(bounds[1], out)
        out = xp.where(out < low, low, xp.where(out > high, high, out))
    return nan_where_nan(be, x, out)


def convolve_slope(be: Backend, f: Piecewise, x: Array, width: Any, kernel: Kernel) -> Array:
    """``g'(x) = (f' * k_w)(x) + sum_i h_i k_w(x - c_i)``: the smoothed derivative plus
    one kernel bump per jump ``h_i`` at ``c_i``."""
    out = convolve(be, f.derivative(), x, width, kernel)
    for c, (height, _, _) in f.jumps():
        if height != 0.0:
            density = kernel._density(be, scaled(be, x, c, width))
            if isinstance(width, float) and not abs(height / width) <= be.xp.finfo(x.dtype).max:
                # h / w overflows the dtype: h k first (at most h / 2), then / w, so that
                # a density underflowed to 0 gives 0, not inf * 0
                out = out + (density * height) / width
            else:
                out = out + (height / width) * density
    return out


def _value_rule(be: Backend, x: Array, width: Any, kernel: Kernel, f: Piecewise) -> Array:
    return convolve(be, f, x, width, kernel)


def _slope_rule(be: Backend, x: Array, width: Any, kernel: Kernel, f: Piecewise) -> Array:
    return convolve_slope(be, f, x, width, kernel)


def formula(f: Piecewise, width: Any, kernel: Kernel) -> Formula:
    """The :class:`Formula` of ``f * k_w``; its fused-form key is ``(f, kernel class)``."""
    return Formula(_value_rule, _slope_rule, width, kernel, f, fusion=(f, type(kernel)))


# -- the named shapes -------------------------------------------------------------------
STEP = Piecewise([0.0], [[0.0], [1.0]])
SIGN = Piecewise([0.0], [[-1.0], [1.0]])
RELU = Piecewise([0.0], [[0.0], [0.0, 1.0]])
ABS = Piecewise([0.0], [[0.0, -1.0], [0.0, 1.0]])


def leaky_relu(negative_slope: float) -> Piecewise:
    return Piecewise([0.0], [[0.0, negative_slope], [0.0, 1.0]])


def clip(lower: float, upper: float) -> Piecewise:
    return Piecewise([lower, upper], [[lower], [0.0, 1.0], [upper]])


def hinge(margin: float) -> Piecewise:
    return Piecewise([margin], [[margin, -1.0], [0.0]])
