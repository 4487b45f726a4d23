"""The numerical engine: ``g(x) = E[f(x - wU)]`` for any elementwise callable ``f``.

Two estimators share one interface, :meth:`Engine.derivatives`, which returns
``g^(n)(x)`` for several orders ``n`` from a single set of evaluations of ``f``:

* **quadrature** cuts the kernel's effective support into panels, locates in each
  panel the one point where ``f`` is least smooth (a jump or a kink) by bisection on
  second differences, splits the panel there and integrates each side with a
  Gauss-Legendre rule. A jump costs no accuracy as long as each panel holds at most
  one (panels are ``2 * range / panels`` wide in units of ``u = (x - y) / w``).
* **Monte Carlo** averages over kernel samples, in antithetic pairs ``(u, -u)``.

Derivatives use the score (Stein) form, which needs no derivative of ``f``:
``g^(n)(x) = w^-n ∫ f(x - wu) k^(n)(u) du`` (integrating by parts ``n`` times), plus a
point term ``c f(x - w u_a)`` wherever ``k^(n-1)`` jumps. It is right for staircases,
whose pathwise derivative is zero almost everywhere.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import Array, Backend, backend_of
from .._kernels import Kernel

GAUSS_POINTS = 4
"""Gauss-Legendre points on each side of a panel's split: 8 nodes per panel."""
NODES_PER_PANEL = 2 * GAUSS_POINTS
_LEGENDRE_NODES, _LEGENDRE_WEIGHTS = np.polynomial.legendre.leggauss(GAUSS_POINTS)
# node positions as fractions of a sub-panel, and weights for a sub-panel of length 1
_FRACTIONS = tuple(float(v) for v in 0.5 * (1.0 + _LEGENDRE_NODES))
_WEIGHTS = tuple(float(v) for v in 0.5 * _LEGENDRE_WEIGHTS)
# f is evaluated on arrays of at most this many elements at a time (panels or samples
# are processed in groups), which bounds the engine's memory to a few such arrays
_CHUNK_ELEMENTS = 1 << 22

METHODS = ("quadrature", "monte_carlo")


@dataclass(frozen=True, eq=False)
class Engine:
    """Everything that fixes ``g``: the callable, the kernel and the estimator.

    Attributes
    ----------
    f : callable
        Elementwise function of arrays.
    kernel : Kernel
    width : float
    method : {"quadrature", "monte_carlo"}
    panels, bisections : int
        Quadrature: the panel count and the halvings that locate each panel's jump.
    samples : int
        Monte Carlo sample count (even when ``antithetic``).
    antithetic : bool
    seed : int, numpy Generator, torch Generator, JAX key or None
    """

    f: Callable[[Array], Array]
    kernel: Kernel
    width: float
    method: str
    panels: int
    bisections: int
    samples: int
    antithetic: bool
    seed: Any

    @property
    def max_order(self) -> int:
        """The highest derivative this estimator gives with a finite error."""
        if self.method == "quadrature":
            return self.kernel.max_derivative_order
        return min(self.kernel.max_derivative_order, self.kernel.max_score_order)

    def check_order(self, order: int) -> None:
        """Raise ``ValueError`` past the highest derivative this estimator gives."""
        if order > self.max_order:
            kind = "quadrature" if self.method == "quadrature" else "Monte Carlo score"
            raise ValueError(
                f"derivative order {order} of a function smoothed by the {self.kernel.name} "
                f"kernel is not available with {kind} (highest: {self.max_order}); use "
                "gradient='autodiff' for smooth f, or another kernel"
            )

    def derivatives(self, be: Backend, x: Array, orders: Sequence[int]) -> list[Array]:
        """``[g^(n)(x) for n in orders]`` from one set of evaluations of ``f``.

        ``x`` is a floating array in its compute dtype; the result has its shape and
        dtype. Gradients flow through ``f`` at the nodes (the pathwise derivative),
        never through the choice of nodes.
        """
        if self.method == "quadrature":
            sums = self._quadrature(be, x, orders)
        else:
            sums, _ = self._monte_carlo(be, x, orders, want_stderr=False)
        return self._finish(be, x, orders, sums)

    def value_and_stderr(self, be: Backend, x: Array) -> tuple[Array, Array]:
        """The Monte Carlo estimate of ``g(x)`` and its standard error."""
        sums, stderr = self._monte_carlo(be, x, (0,), want_stderr=True)
        return self._finish(be, x, (0,), sums)[0], stderr

    # -- shared ------------------------------------------------------------------
    def _f(self, be: Backend, x: Array, u: Array) -> Array:
        """``f(x - w u)``, checked to be elementwise and cast to ``x``'s dtype."""
        return call_elementwise(be, self.f, x - self.width * u)

    def _f_at_panel_point(self, be: Backend, x: Array, t: Array) -> Array:
        """``f(x - w u(t))`` at the quadrature variable ``t``."""
        return self._f(be, x, self.kernel._panel_point(be, t))

    def _finish(
        self, be: Backend, x: Array, orders: Sequence[int], sums: list[Array]
    ) -> list[Array]:
        out = []
        for order, total in zip(orders, sums, strict=True):
            for point, coefficient in self.kernel._derivative_atoms(order):
                total = total + coefficient * self._f(be, x, be.const(point, x))
            out.append(total * (1.0 / self.width) ** order if order else total)
        return out

    # -- quadrature --------------------------------------------------------------
    def _quadrature(self, be: Backend, x: Array, orders: Sequence[int]) -> list[Array]:
        xp = be.xp
        edges = self.kernel._panel_edges(self.panels)
        group = _group_size(x, len(edges) - 1)
        sums: list[Array] = [xp.zeros_like(x) for _ in orders]
        for start in range(0, len(edges) - 1, group):
            chunk = edges[start : start + group + 1]
            panel_shape = (len(chunk) - 1,) + (1,) * x.ndim
            lower = xp.reshape(be.const(chunk[:-1], x), panel_shape)
            upper = xp.reshape(be.const(chunk[1:], x), panel_shape)
            split = self._locate(be, x, lower, upper)
            for left, right in ((lower, split), (split, upper)):
                length = right - left
                for fraction, weight in zip(_FRACTIONS, _WEIGHTS, strict=True):
                    t = left + fraction * length
                    values = self._f_at_panel_point(be, x, t)
                    for i, order in enumerate(orders):
                        scale = (weight * length) * self.kernel._panel_weight(be, t, order)
                        sums[i] = sums[i] + xp.sum(values * scale, axis=0)
        return sums

    def _locate(self, be: Backend, x: Array, lower: Array, upper: Array) -> Array:
        """Per panel and element, the point where ``f(x - w u(t))`` is least smooth.

        Bisection that keeps the half whose second difference is larger: a jump ``h``
        makes it ``|h|``, a kink ``|slope change| * length``, smooth ``f`` only
        ``O(length^2)``. Without a singularity the point is arbitrary and harmless.
        """
        xp = be.xp
        x = be.stop_gradient(x)
        lo = lower + xp.zeros_like(x)
        hi = upper + xp.zeros_like(x)
        if self.bisections == 0:
            return 0.5 * (lo + hi)

        def at(t: Array) -> Array:
            return self._f_at_panel_point(be, x, t)

        def halve(_: Any, state: tuple[Array, ...]) -> tuple[Array, ...]:
            lo, hi, mid, f_lo, f_mid, f_hi = state
            q1, q3 = 0.5 * (lo + mid), 0.5 * (mid + hi)
            f_q1, f_q3 = at(q1), at(q3)
            left = xp.abs(f_lo - 2.0 * f_q1 + f_mid) >= xp.abs(f_mid - 2.0 * f_q3 + f_hi)
            return (
                xp.where(left, lo, mid), xp.where(left, mid, hi), xp.where(left, q1, q3),
                xp.where(left, f_lo, f_mid), xp.where(left, f_q1, f_q3),
                xp.where(left, f_mid, f_hi),
            )  # fmt: skip

        mid = 0.5 * (lo + hi)
        state = (lo, hi, mid, at(lo), at(mid), at(hi))
        mid = fori_loop(be, self.bisections, halve, state)[2]
        return be.stop_gradient(mid)

    # -- Monte Carlo -------------------------------------------------------------
    def _monte_carlo(
        self, be: Backend, x: Array, orders: Sequence[int], *, want_stderr: bool
    ) -> tuple[list[Array], Array | None]:
        xp = be.xp
        draws = self.samples // 2 if self.antithetic else self.samples
        u = self.kernel._quantile(be, uniform_samples(be, self.seed, draws, x))
        group = _group_size(x, draws)
        sums: list[Array] = [xp.zeros_like(x) for _ in orders]
        # per-element sums of (p - p_0) and (p - p_0)^2 over the independent draws p
        # (pair means when antithetic), shifted by the first draw to avoid cancellation
        shift: Array = None
        shifted_sum: Array = None
        shifted_squares: Array = None
        for start in range(0, draws, group):
            u_chunk = xp.reshape(u[start : start + group], (-1,) + (1,) * x.ndim)
            values = self._f(be, x, u_chunk)
            mirrored = self._f(be, x, -u_chunk) if self.antithetic else None
            for i, order in enumerate(orders):
                score = self.kernel._score(be, u_chunk, order)
                term = values * score
                if mirrored is not None:  # the kernel is even: k^(n)(-u) = (-1)^n k^(n)(u)
                    term = term + (-1.0) ** order * mirrored * score
                sums[i] = sums[i] + xp.sum(term, axis=0) / float(self.samples)
            if want_stderr:
                draw = values if mirrored is None else 0.5 * (values + mirrored)
                if shift is None:
                    shift = be.stop_gradient(draw[0])
                    shifted_sum = shifted_squares = xp.zeros_like(x)
                centred = draw - shift
                shifted_sum = shifted_sum + xp.sum(centred, axis=0)
                shifted_squares = shifted_squares + xp.sum(centred * centred, axis=0)
        stderr = None
        if want_stderr:
            mean = shifted_sum / float(draws)
            variance = (shifted_squares - float(draws) * mean * mean) / float(max(draws - 1, 1))
            stderr = xp.sqrt(xp.maximum(variance, be.const(0.0, x)) / float(draws))
        return sums, stderr


def _group_size(x: Array, count: int) -> int:
    """How many of ``count`` panels or samples to evaluate ``f`` on at once."""
    return max(1, min(count, _CHUNK_ELEMENTS // max(1, math.prod(x.shape))))


def fori_loop(
    be: Backend,
    count: int,
    body: Callable[[Any, tuple[Array, ...]], tuple[Array, ...]],
    state: tuple[Array, ...],
) -> tuple[Array, ...]:
    """``count`` applications of ``body``; a ``lax.fori_loop`` under JAX, which traces the
    body once instead of unrolling it (``jax.jit`` compiles in seconds, not minutes)."""
    return be.fori_loop(count, body, state)


def call_elementwise(be: Backend, f: Callable[[Array], Array], y: Array) -> Array:
    """``f(y)``, checked: an array of ``y``'s framework and shape, cast to ``y``'s dtype.

    Integer and boolean results (``y > 0``) are converted; complex or non-numeric
    results, other frameworks and other shapes raise naming ``f``.
    """
    out = f(y)
    if isinstance(out, (int, float)) and be.name == "numpy":
        out = np.asarray(out)
    try:
        out_backend = backend_of(out)
    except TypeError:
        out_backend = None
    if out_backend is not be or (be.name == "numpy" and not hasattr(out, "shape")):
        raise TypeError(
            f"f must return an array of the same framework as its input ({be.name}); "
            f"got {type(out).__name__}"
        )
    if tuple(out.shape) != tuple(y.shape):
        raise ValueError(
            f"f must be elementwise: f(y) must have y's shape {tuple(y.shape)}; "
            f"got shape {tuple(out.shape)}"
        )
    xp = be.xp
    if out.dtype != y.dtype:
        if not (xp.isdtype(out.dtype, "real floating") or xp.isdtype(out.dtype, "integral")
                or xp.isdtype(out.dtype, "bool")):  # fmt: skip
            raise TypeError(f"f must return real numbers; got dtype {out.dtype}")
        out = xp.astype(out, y.dtype)
    return out


def uniform_samples(be: Backend, seed: Any, count: int, like: Array) -> Array:
    """``count`` uniform draws in (0, 1) in ``like``'s dtype and device.

    ``seed`` is an int or ``None`` (a fresh NumPy generator each call, so an int gives
    the same draws every call), a ``numpy.random.Generator`` (advanced by each call), a
    ``torch.Generator`` (torch inputs) or a JAX PRNG key (JAX inputs).
    """
    kind = seed_kind(seed)
    if kind != "numpy":
        if be.name != kind:
            what, inputs = (
                ("a torch.Generator", "torch") if kind == "torch" else ("a JAX key", "JAX")
            )
            raise TypeError(f"{what} seed needs {inputs} inputs; got {be.name} arrays")
        p = be.uniform(seed, count, like)
    else:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        p = be.const(rng.random(count), like)
    # map [0, 1) affinely into [eps, 1 - eps] so that every quantile is finite
    margin = float(be.xp.finfo(like.dtype).eps)
    return p * (1.0 - 2.0 * margin) + margin


def seed_kind(seed: Any) -> str:
    """``"numpy"``, ``"torch"`` or ``"jax"``: which framework draws the samples.

    Raises
    ------
    TypeError
        For anything that is not a seed of one of them.
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(seed, torch.Generator):
        return "torch"
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(seed, jax.Array):
        return "jax"
    if seed is None or isinstance(seed, np.random.Generator):
        return "numpy"
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return "numpy"
    raise TypeError(
        "seed must be a non-negative int, None, a numpy.random.Generator, a "
        f"torch.Generator or a JAX PRNG key; got {seed!r}"
    )
