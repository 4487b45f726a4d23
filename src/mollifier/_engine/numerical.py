"""The numerical engine: ``g(x) = E[f(x - wU)]`` for any elementwise callable ``f``.

Two estimators share one interface, :meth:`Engine.derivatives`, which returns
``g^(n)(x)`` for several orders ``n`` from a single set of evaluations of ``f``:

* **quadrature** cuts the kernel's effective support into panels, locates in each
  panel the one point where ``f`` is least smooth (a jump or a kink) by bisection on
  second differences, splits the panel there and integrates each side with a
  Gauss-Legendre rule. A jump costs no accuracy as long as each panel holds at most
  one (panels are ``2 * range / panels`` wide in units of ``u = (x - y) / w``).
* **Monte Carlo** averages over kernel samples, in antithetic pairs ``(u, -u)``.

A function of vectors (``event_ndim=1``, :meth:`Engine.perturbed`) is smoothed by
Monte Carlo alone, with ``U`` iid in each coordinate; its Jacobian is the score form
per coordinate. :meth:`Engine.perturbed_max` gives the perturbed maximum of a linear
objective and its gradient, the perturbed maximizer (the Fenchel-Young loss).

Derivatives use the score (Stein) form, which needs no derivative of ``f``:
``g^(n)(x) = w^-n ∫ f(x - wu) k^(n)(u) du`` (integrating by parts ``n`` times), plus a
point term ``c f(x - w u_a)`` wherever ``k^(n-1)`` jumps. It is right for staircases,
whose pathwise derivative is zero almost everywhere.
"""

from __future__ import annotations

import functools
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .._backend import Array, Backend, backend_of
from .._kernels import Kernel

# Gauss-Kronrod (7, 15) on each side of a panel's split (QUADPACK's qk15 constants):
# the 15-point Kronrod sum is the value, its distance to the 7-point Gauss sum on the
# same nodes the error estimate
_KRONROD_NODES = (
    0.991455371120812639206854697526329, 0.949107912342758524526189684047851,
    0.864864423359769072789712788640926, 0.741531185599394439863864773280788,
    0.586087235467691130294144838258730, 0.405845151377397166906606412076961,
    0.207784955007898467600689403773245, 0.0,
)  # fmt: skip
_KRONROD_WEIGHTS = (
    0.022935322010529224963732008058970, 0.063092092629978553290700663189204,
    0.104790010322250183839876322541518, 0.140653259715525918745189590510238,
    0.169004726639267902826583426598550, 0.190350578064785409913256402421014,
    0.204432940075298892414161999234649, 0.209482141084727828012999174891714,
)  # fmt: skip
_GAUSS_WEIGHTS = (
    0.0, 0.129484966168869693270611432679082, 0.0, 0.279705391489276667901467771423780,
    0.0, 0.381830050505118944950369775488975, 0.0, 0.417959183673469387755102040816327,
)  # fmt: skip


def _gauss_kronrod_rule() -> tuple[tuple[float, float, float], ...]:
    """``(position, Kronrod weight, Gauss weight)`` on ``[0, 1]`` (weights for length 1)."""
    rule = []
    for node, kronrod, gauss in zip(_KRONROD_NODES, _KRONROD_WEIGHTS, _GAUSS_WEIGHTS, strict=True):
        for sign in (-1.0, 1.0) if node else (1.0,):
            rule.append((0.5 * (1.0 + sign * node), 0.5 * kronrod, 0.5 * gauss))
    return tuple(rule)


RULE = _gauss_kronrod_rule()
NODES_PER_PANEL = 2 * len(RULE)
"""Quadrature nodes per panel: a 15-point Gauss-Kronrod rule on each side of its split."""
# f is evaluated on arrays of at most this many elements at a time (panels or samples
# are processed in groups), which bounds the engine's memory to a few such arrays
_CHUNK_ELEMENTS = 1 << 22
# a function of vectors keeps its Jacobian (batch x m x n) for the backward pass up to
# this many elements; beyond, the adapters evaluate f again in backward for the gradient
JACOBIAN_ELEMENTS = 1 << 22
# the accuracy asked of a float32 (float16 ...) g cannot be below its rounding
_ROUNDING_TOL = 64.0


class AccuracyWarning(UserWarning):
    """``mollifier.smooth`` could not reach the requested ``tol`` within its budget.

    The value returned is the best estimate found; ``g(x, return_error=True)`` gives its
    error estimate. Raise ``max_nodes`` (or the width), or turn the warning into an
    error with ``warnings.simplefilter("error", mollifier.AccuracyWarning)``.
    """


METHODS = ("quadrature", "monte_carlo")
SAMPLERS = ("random", "sobol")
QMC_REPLICATES = 16
"""Independent scrambles whose spread gives the randomized QMC standard error."""


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
        Quadrature: the first level's panel count and the halvings that locate each
        panel's jump.
    samples : int
        Monte Carlo sample count (even when ``antithetic``).
    antithetic : bool
    seed : int, numpy Generator, torch Generator, JAX key or None
    tol : float
        Quadrature: the error sought, relative to the scale of ``f`` near ``x``.
    max_panels : int
        Quadrature: the budget; the panel count doubles from ``panels`` up to it.
    traced_panels : int or None
        The one panel count used while traced by JAX (``jax.jit``, ``vmap``, ``grad``)
        when the budget was not given: there every level would be compiled (seconds
        each) and, under ``vmap``, computed for every element. ``None``: adapt.
    sampler : {"random", "sobol"}
        Monte Carlo: independent draws, or randomized quasi-Monte Carlo (16 scrambled
        Sobol sequences through the kernel's quantile).
    event_ndim : {0, 1}
        ``0``: ``f`` is elementwise. ``1``: ``f`` maps vectors (the last axis of ``x``)
        to arrays, ``g(x) = E[f(x - wU)]`` with ``U`` iid from the kernel in each
        coordinate, by Monte Carlo (:meth:`perturbed`).
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
    tol: float = 1e-9
    max_panels: int = 4096
    traced_panels: int | None = None
    sampler: str = "random"
    event_ndim: int = 0

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

    def levels(self, traced: bool = False) -> tuple[int, ...]:
        """The panel counts tried in turn: ``panels`` doubled while within the budget."""
        if traced and self.traced_panels is not None:
            return (min(self.max_panels, max(self.panels, self.traced_panels)),)
        counts = [self.panels]
        while 2 * counts[-1] <= self.max_panels:
            counts.append(2 * counts[-1])
        return tuple(counts)

    def derivatives(self, be: Backend, x: Array, orders: Sequence[int]) -> list[Array]:
        """``[g^(n)(x) for n in orders]`` from one set of evaluations of ``f``.

        ``x`` is a floating array in its compute dtype; the result has its shape and
        dtype. Gradients flow through ``f`` at the nodes (the pathwise derivative),
        never through the choice of nodes. Quadrature warns (:class:`AccuracyWarning`)
        where its error estimate stays above ``tol`` within the budget.
        """
        return self.derivatives_and_errors(be, x, orders)[0]

    def derivatives_and_errors(
        self, be: Backend, x: Array, orders: Sequence[int]
    ) -> tuple[list[Array], list[Array] | None]:
        """The derivatives and, for quadrature, their error estimates (``None`` for
        Monte Carlo, whose error is :meth:`value_and_stderr`'s standard error)."""
        self.check_principal_value(be, x)
        if self.method == "quadrature":
            sums, errors = self._quadrature(be, x, orders)
        else:
            sums, _ = self._monte_carlo(be, x, orders, want_stderr=False)
            errors = None
        scales = [(1.0 / self.width) ** order for order in orders]
        values = self._finish(be, x, orders, sums)
        if errors is not None:
            errors = [be.stop_gradient(e) * s for e, s in zip(errors, scales, strict=True)]
        return values, errors

    def value_and_stderr(self, be: Backend, x: Array) -> tuple[Array, Array]:
        """The Monte Carlo estimate of ``g(x)`` and its standard error."""
        self.check_principal_value(be, x)
        sums, stderr = self._monte_carlo(be, x, (0,), want_stderr=True)
        return self._finish(be, x, (0,), sums)[0], stderr

    # -- shared ------------------------------------------------------------------
    def _f(self, be: Backend, x: Array, u: Array) -> Array:
        """``f(x - w u)``, checked to be elementwise and cast to ``x``'s dtype."""
        return call_elementwise(be, self.f, x - self.width * u)

    @property
    def folded(self) -> bool:
        """Whether the quadrature pairs ``u`` with ``-u`` (a principal value): for the
        heavy-tailed kernels, where ``f`` of linear growth has no absolute integral."""
        return self.kernel.quadrature_in_angle

    def _f_at_panel_point(self, be: Backend, x: Array, t: Array) -> tuple[Array, ...]:
        """``f(x - w u(t))`` at the quadrature variable ``t``, and ``f(x + w u(t))``
        too when :attr:`folded`."""
        u = self.kernel._panel_point(be, t)
        if not self.folded:
            return (self._f(be, x, u),)
        return self._f(be, x, u), self._f(be, x, -u)

    def _finish(
        self, be: Backend, x: Array, orders: Sequence[int], sums: list[Array]
    ) -> list[Array]:
        out = []
        for order, total in zip(orders, sums, strict=True):
            for point, coefficient in self.kernel._derivative_atoms(order):
                total = total + coefficient * self._f(be, x, be.const(point, x))
            out.append(total * (1.0 / self.width) ** order if order else total)
        return out

    def check_principal_value(self, be: Backend, x: Array) -> None:
        """Raise ``ValueError`` where ``E[f(x - wU)]`` diverges even as a principal value.

        Only kernels with power tails ``k(u) ~ |u|^-p`` (:attr:`Kernel.tail_power`) can
        diverge for an ``f`` of polynomial growth: the principal value pairs ``u`` with
        ``-u`` and needs the even part ``e(u) = f(x - wu) + f(x + wu)`` to grow slower
        than ``|u|^(p - 1)``. Its growth is measured between ``|u| ~ 1e3`` and ``1e9``
        (where ``|u|^(p - 1.5)`` separates bounded from linear growth for Cauchy,
        linear from quadratic for ``sqrt``). Skipped while traced (``jax.jit``).
        """
        power = self.kernel.tail_power
        if not math.isfinite(power) or be.traced(x):
            return
        xp = be.xp
        x = be.stop_gradient(x)
        finite = xp.isfinite(x)
        x = xp.where(finite, x, be.const(0.0, x))

        def envelope(exponents: tuple[int, ...]) -> Array:
            total = xp.zeros_like(x)
            for e in exponents:
                u = be.const(10.0**e, x)
                even = xp.abs(self._f(be, x, u) + self._f(be, x, -u))
                total = xp.maximum(total, xp.where(xp.isnan(even), total, even))
            return total

        near, far = envelope((3, 4)), envelope((8, 9))
        growth = far > (1e5 ** (power - 1.5)) * xp.maximum(near, be.const(1.0, x))
        if float(xp.max(xp.where(growth & finite, x * 0.0 + 1.0, x * 0.0))) > 0.0:
            raise ValueError(
                f"E[f(x - wU)] diverges for the {self.kernel.name} kernel: its density "
                f"falls like |u|^-{power:g}, and f(x - wu) + f(x + wu) grows like "
                f"|u|^{power - 1:g} or faster (measured up to |u| = 1e9), so not even the "
                "principal value exists (e.g. abs, relu with the Cauchy kernel); use a "
                "kernel with lighter tails"
            )

    # -- quadrature --------------------------------------------------------------
    def _quadrature(
        self, be: Backend, x: Array, orders: Sequence[int]
    ) -> tuple[list[Array], list[Array]]:
        """Each element's first level whose error estimate meets ``tol`` (or the last).

        Levels double the panel count. Once every element has met ``tol``, the rest are
        skipped: by a Python test in eager mode, by ``lax.cond`` under ``jax.jit``
        (under ``torch.compile`` every level runs). An element that never meets it
        raises :class:`AccuracyWarning` (not while traced).
        """
        xp = be.xp
        tol = max(self.tol, _ROUNDING_TOL * float(xp.finfo(x.dtype).eps))
        traced = be.traced(x)
        one = xp.zeros_like(x) + 1.0
        # state: (accepted sums, their errors, met, this level's sums); a level's error is
        # its own |K15 - G7| plus its distance to the level before, which also catches
        # a narrow feature that every node of one level missed
        state: Any = None
        levels = self.levels(traced and be.name == "jax")
        for panels in levels:
            last = panels == levels[-1]

            def level(previous: Any, panels: int = panels, last: bool = last) -> tuple[Any, ...]:
                sums, errors, scales = self._level(be, x, orders, panels)
                met: Any = None
                for i, (error, scale) in enumerate(zip(errors, scales, strict=True)):
                    if previous is None and not last:
                        ok = xp.isnan(error)  # no level is accepted alone (but the only one)
                    else:
                        if previous is not None:
                            error = error + xp.abs(be.stop_gradient(sums[i] - previous[3][i]))
                            errors[i] = error
                        # NaN from f: nothing more to gain
                        ok = (error <= tol * xp.maximum(scale, one)) | xp.isnan(error)
                    met = ok if met is None else met & ok
                if previous is None:
                    return tuple(sums), tuple(errors), met, tuple(sums)
                done = previous[2]
                return (
                    tuple(xp.where(done, a, b) for a, b in zip(previous[0], sums, strict=True)),
                    tuple(xp.where(done, a, b) for a, b in zip(previous[1], errors, strict=True)),
                    done | met,
                    tuple(sums),
                )

            if state is None:
                state = level(None)
            elif traced and be.name != "jax":  # torch.compile: every level
                state = level(state)
            elif not traced:
                state = (
                    level(state)
                    if float(xp.min(xp.where(state[2], one, one - 1.0))) == 0.0
                    else state
                )
            else:  # JAX traced with an explicit budget: lax.cond skips converged levels
                missing = xp.max(xp.where(state[2], one - 1.0, one)) > 0.0
                state = be.skip_unless(missing, functools.partial(level, state), state)
        sums, errors, met, _ = state
        if traced:
            be.warn_at_run_time(
                ~met,
                AccuracyWarning(
                    f"smooth(f) with the {self.kernel.name} kernel at width {self.width:g} "
                    f"did not reach tol={self.tol:g} at some points within "
                    f"{levels[-1] * NODES_PER_PANEL} nodes (traced: one level unless "
                    "max_nodes is given): raise max_nodes, or see return_error=True"
                ),
            )
        if not traced and float(xp.min(xp.where(met, one, one - 1.0))) == 0.0:
            worst = float(xp.max(xp.where(met, one - 1.0, errors[0])))
            warnings.warn(
                AccuracyWarning(
                    f"smooth(f) with the {self.kernel.name} kernel at width {self.width:g} "
                    f"did not reach tol={self.tol:g} at "
                    f"{int(float(xp.sum(xp.where(met, one - 1.0, one))))} of "
                    f"{math.prod(x.shape)} "
                    f"points within max_nodes={self.max_panels * NODES_PER_PANEL} "
                    f"(value error estimate up to {worst:.2g}): raise max_nodes, or check "
                    "that f is bounded near x"
                ),
                stacklevel=5,
            )
        return list(sums), list(errors)

    def _edges(self, panels: int) -> np.ndarray:
        """Panel edges in the quadrature variable; the half ``t >= 0`` when folded."""
        if not self.folded:
            return self.kernel._panel_edges(panels)
        edges = self.kernel._panel_edges(2 * panels)[panels:].copy()
        edges[0] = 0.0
        return edges

    def _level(
        self, be: Backend, x: Array, orders: Sequence[int], panels: int
    ) -> tuple[list[Array], list[Array], list[Array]]:
        """One fixed rule: sums, error estimates and scales ``sum |f k^(n)|`` per order.

        Each panel is split where ``f`` is least smooth (:meth:`_locate`), each side
        integrated by Gauss-Kronrod (7, 15); the error estimate adds ``|K15 - G7|``
        over every side of every panel (no cancellation between panels).
        """
        xp = be.xp
        edges = self._edges(panels)
        group = max(1, _group_size(x, len(edges) - 1) // len(RULE))
        zero = xp.zeros_like(x)
        sums = [zero for _ in orders]
        errors = [zero for _ in orders]
        scales = [zero for _ in orders]
        mass: Any = 0.0
        ones = (1,) * x.ndim
        # the rule's nodes on an axis of their own: one call of f per side of the panels
        fractions = xp.reshape(be.const(np.array([r[0] for r in RULE]), x), (1, -1, *ones))
        k_weights = xp.reshape(be.const(np.array([r[1] for r in RULE]), x), (1, -1, *ones))
        g_weights = xp.reshape(be.const(np.array([r[2] for r in RULE]), x), (1, -1, *ones))
        for start in range(0, len(edges) - 1, group):
            chunk = edges[start : start + group + 1]
            panel_shape = (len(chunk) - 1, 1, *ones)
            lower = xp.reshape(be.const(chunk[:-1], x), panel_shape)
            upper = xp.reshape(be.const(chunk[1:], x), panel_shape)
            split, bracket = self._locate(be, x, lower, upper)
            for i, order in enumerate(orders):
                # the jump is somewhere in the last bracket: at most its jump times its
                # length off (in the weight's units)
                weight = xp.abs(self.kernel._panel_weight(be, split, order))
                errors[i] = errors[i] + xp.sum(bracket * weight, axis=(0, 1))
            for left, right in ((lower, split), (split, upper)):
                length = right - left
                t = left + fractions * length
                values = self._f_at_panel_point(be, x, t)
                for i, order in enumerate(orders):
                    if self.folded:  # k^(n)(-u) = (-1)^n k^(n)(u)
                        value = values[0] + (-1.0) ** order * values[1]
                    else:
                        value = values[0]
                    term = (value * length) * self.kernel._panel_weight(be, t, order)
                    sums[i] = sums[i] + xp.sum(term * k_weights, axis=(0, 1))
                    quiet = be.stop_gradient(term)
                    difference = xp.sum(quiet * (k_weights - g_weights), axis=1)
                    errors[i] = errors[i] + xp.sum(xp.abs(difference), axis=0)
                    scales[i] = scales[i] + xp.sum(xp.abs(quiet) * k_weights, axis=(0, 1))
                mass = mass + xp.sum(
                    (length * self.kernel._panel_weight(be, t, 0)) * k_weights, axis=(0, 1)
                )
        # the kernel's mass beyond the integrated range (1e-12 for Cauchy in the angle)
        # is missing from the value: about that times the mean |f| (twice, for margin)
        missing = xp.abs((2.0 if self.folded else 1.0) * mass - 1.0)
        errors[0] = errors[0] + 2.0 * missing * scales[0] if orders[0] == 0 else errors[0]
        return sums, errors, scales

    def _locate(self, be: Backend, x: Array, lower: Array, upper: Array) -> tuple[Array, Array]:
        """Per panel and element, the point where ``f(x - w u(t))`` is least smooth, and
        the last bracket's length times the change of ``f`` across it.

        Bisection that keeps the half whose second difference is larger: a jump ``h``
        makes it ``|h|``, a kink ``|slope change| * length``, smooth ``f`` only
        ``O(length^2)``. Without a singularity the point is arbitrary and harmless.
        (Folded, the sum ``f(x - wu) + f(x + wu)`` is searched.)
        """
        xp = be.xp
        x = be.stop_gradient(x)
        lo = lower + xp.zeros_like(x)
        hi = upper + xp.zeros_like(x)
        if self.bisections == 0:
            return 0.5 * (lo + hi), xp.zeros_like(lo)

        def at(t: Array) -> Array:
            values = self._f_at_panel_point(be, x, t)
            return values[0] if len(values) == 1 else values[0] + values[1]

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
        if be.traced(x):
            lo, hi, mid, f_lo, _, f_hi = fori_loop(be, self.bisections, halve, state)
        else:  # eager: a Python loop (lax.fori_loop would compile for every panel count)
            for i in range(self.bisections):
                state = halve(i, state)
            lo, hi, mid, f_lo, _, f_hi = state
        bracket = xp.abs(f_hi - f_lo) * (hi - lo)
        return be.stop_gradient(mid), be.stop_gradient(
            xp.where(xp.isnan(bracket), 0.0 * lo, bracket)
        )

    # -- Monte Carlo -------------------------------------------------------------
    def _monte_carlo(
        self, be: Backend, x: Array, orders: Sequence[int], *, want_stderr: bool
    ) -> tuple[list[Array], Array | None]:
        xp = be.xp
        draws = self.samples // 2 if self.antithetic else self.samples
        qmc = self.sampler == "sobol"
        if qmc:  # R independent scrambles of 2^k Sobol points each: the replicate means
            # are independent, so their spread is an honest standard error
            per = 1 << max(0, (draws // QMC_REPLICATES).bit_length() - 1)
            draws = QMC_REPLICATES * per
            p = be.const(sobol_samples(self.seed, QMC_REPLICATES, per), x)
            group = min(per, 1 << (_group_size(x, draws).bit_length() - 1))
        else:
            per = draws
            p = uniform_samples(be, self.seed, draws, x)
            group = _group_size(x, draws)
        u = self.kernel._quantile(be, p)
        # the antithetic partner of K^-1(p) is K^-1(1 - p): -u for a symmetric kernel
        partner = None if self.kernel.symmetric else self.kernel._quantile(be, 1.0 - p)
        count = float(2 * draws if self.antithetic else draws)
        sums: list[Array] = [xp.zeros_like(x) for _ in orders]
        # per-element sums of (p - p_0) and (p - p_0)^2 over the independent draws p
        # (pair means when antithetic), shifted by the first draw to avoid cancellation;
        # with QMC the sums of each replicate instead
        shift: Array = None
        shifted_sum: Array = None
        shifted_squares: Array = None
        replicates: list[Any] = [0.0] * QMC_REPLICATES
        # a control variate for the derivatives: the score h = k^(n)/k has a known mean
        # (0, less the atoms of k^(n)), so E[f h] = E[(f - b)(h - E h)] + b E h for any b
        # independent of the draw; b is f's mean over the other independent groups
        # (draws, antithetic pairs or QMC replicates), which keeps the estimate unbiased
        # and removes the variance that f's level adds (antithetic pairs of a symmetric
        # kernel cancel it already for odd n)
        unit = per if qmc else 1
        controlled = [
            order >= 1 and draws > unit and not (
                self.antithetic and self.kernel.symmetric and order % 2
            )
            for order in orders
        ]  # fmt: skip
        sum_f: Any = 0.0
        sum_h: list[Any] = [0.0 for _ in orders]
        cross: list[Any] = [0.0 for _ in orders]
        group_f: list[Any] = [0.0] * QMC_REPLICATES
        group_h: list[list[Any]] = [[0.0] * QMC_REPLICATES for _ in orders]
        for start in range(0, draws, group):
            u_chunk = xp.reshape(u[start : start + group], (-1,) + (1,) * x.ndim)
            values = self._f(be, x, u_chunk)
            mirrored = partner_chunk = None
            if self.antithetic and partner is not None:
                partner_chunk = xp.reshape(partner[start : start + group], u_chunk.shape)
                mirrored = self._f(be, x, partner_chunk)
            elif self.antithetic:
                mirrored = self._f(be, x, -u_chunk)
            draw = values if mirrored is None else 0.5 * (values + mirrored)
            if any(controlled):
                sum_f = sum_f + xp.sum(draw, axis=0)
            for i, order in enumerate(orders):
                score = self.kernel._score(be, u_chunk, order)
                term = values * score
                mean_score = score
                if partner_chunk is not None:
                    other = self.kernel._score(be, partner_chunk, order)
                    term = term + mirrored * other
                    mean_score = 0.5 * (score + other)
                elif mirrored is not None:  # the kernel is even: k^(n)(-u) = (-1)^n k^(n)(u)
                    term = term + (-1.0) ** order * mirrored * score
                sums[i] = sums[i] + xp.sum(term, axis=0) / count
                if controlled[i]:
                    sum_h[i] = sum_h[i] + xp.sum(mean_score, axis=0)
                    if qmc:
                        group_h[i][start // per] = group_h[i][start // per] + xp.sum(
                            mean_score, axis=0
                        )
                    else:
                        cross[i] = cross[i] + xp.sum(draw * mean_score, axis=0)
            if qmc and any(controlled):
                group_f[start // per] = group_f[start // per] + xp.sum(draw, axis=0)
            if want_stderr:
                if qmc:
                    replicates[start // per] = replicates[start // per] + xp.sum(draw, axis=0)
                    continue
                if shift is None:
                    shift = be.stop_gradient(draw[0])
                    shifted_sum = shifted_squares = xp.zeros_like(x)
                centred = draw - shift
                shifted_sum = shifted_sum + xp.sum(centred, axis=0)
                shifted_squares = shifted_squares + xp.sum(centred * centred, axis=0)
        for i, order in enumerate(orders):
            if not controlled[i]:
                continue
            if qmc:
                cross[i] = sum(f * h for f, h in zip(group_f, group_h[i], strict=True))
            # the score's mean: minus the weights of the atoms of k^(n) (whose total is 0)
            mean = -sum(c for _, c in self.kernel._derivative_atoms(order))
            baseline_term = (sum_f * sum_h[i] - cross[i]) / float(draws - unit) - mean * sum_f
            sums[i] = sums[i] - baseline_term / float(draws)
        stderr = None
        if want_stderr and qmc:
            stderr = _replicate_stderr(xp, [r / float(per) for r in replicates])
        elif want_stderr:
            mean = shifted_sum / float(draws)
            variance = (shifted_squares - float(draws) * mean * mean) / float(max(draws - 1, 1))
            stderr = xp.sqrt(xp.maximum(variance, be.const(0.0, x)) / float(draws))
        return sums, stderr

    # -- functions of vectors (event_ndim = 1) ----------------------------------------
    def event_draws(self, be: Backend, x: Array) -> Array:
        """The uniform draws ``p`` of shape ``(draws, n)`` for ``x`` of shape ``(..., n)``
        (``samples / 2`` of them when antithetic, each then paired with ``1 - p``).

        Separate from :meth:`perturbed` so that a JAX key may be traced (``jax.jit``):
        the adapters take ``p`` as an input of no derivative.
        """
        n = x.shape[-1]
        draws = self.samples // 2 if self.antithetic else self.samples
        if self.sampler == "sobol":
            per = 1 << max(0, (draws // QMC_REPLICATES).bit_length() - 1)
            return be.const(sobol_samples(self.seed, QMC_REPLICATES, per, n), x)
        return be.xp.reshape(uniform_samples(be, self.seed, draws * n, x), (draws, n))

    def check_event_gradient(self) -> None:
        """Raise ``ValueError`` where the score Jacobian of a function of vectors is not
        available: a kernel whose ``k'`` has point masses (uniform: the gradient would need
        ``f`` with one coordinate held at the support's edge) or whose score has infinite
        variance (Epanechnikov, :attr:`Kernel.max_score_order`)."""
        if self.kernel._derivative_atoms(1) or self.kernel.max_score_order < 1:
            raise ValueError(
                f"the score-function gradient of a function of vectors (event_ndim=1) needs "
                f"a kernel with E[(k'/k)^2] < inf and no jumps in k; the {self.kernel.name} "
                "kernel has not: use gaussian, logistic, laplace, gumbel, biweight, ... or "
                "gradient='autodiff' for a continuous f"
            )

    def perturbed(
        self, be: Backend, x: Array, p: Array, *, jacobian: bool, want_stderr: bool = False
    ) -> tuple[Array, Array | None, Array | None]:
        """``g(x) = E[f(x - wU)]`` for ``x`` of shape ``(..., n)``, its Jacobian and the
        value's standard error, from the draws ``p`` of :meth:`event_draws`.

        ``U = K^-1(p)`` coordinate by coordinate (paired with ``K^-1(1 - p)`` when
        antithetic); the same draws serve every row of ``x``. The Jacobian, shape
        ``(..., m, n)`` with ``m`` the size of ``f``'s output event, is the score form
        (Stein's identity per coordinate, no derivative of ``f``):

        .. math:: \\partial g_i / \\partial x_j = w^{-1} E[f_i(x - wU) \\psi(U_j)],
            \\quad \\psi = k'/k,

        with a leave-one-group-out baseline ``b`` (``E[psi] = 0``, so ``E[(f - b) psi]``
        is unchanged while ``b`` is independent of the group): the mean of ``f`` over
        the other independent groups (one draw, one antithetic pair, or one QMC
        replicate). That keeps it unbiased and removes the variance that ``f``'s mean
        would add; for a symmetric kernel with antithetic pairs ``psi(-u) = -psi(u)``
        cancels the mean already. Gradients flow through ``f`` (the pathwise
        derivative) unless the adapters replace them by this Jacobian.
        """
        xp = be.xp
        if jacobian:
            self.check_event_gradient()
        batch = tuple(x.shape[:-1])
        total = p.shape[0]
        qmc = self.sampler == "sobol"
        per = total // QMC_REPLICATES if qmc else 1  # draws per independent group
        u = self.kernel._quantile(be, p)
        partner: Array = None
        if self.antithetic:
            partner = -u if self.kernel.symmetric else self.kernel._quantile(be, 1.0 - p)
        # the baseline is needed unless antithetic pairs cancel the score's mean exactly
        baseline = jacobian and not (self.antithetic and self.kernel.symmetric)
        group = _group_size(x, total)
        if qmc:
            group = min(per, 1 << (group.bit_length() - 1))
        event: tuple[int, ...] = ()
        sum_f: Any = 0.0
        sum_q: Any = 0.0
        sum_h: Any = 0.0
        cross: Any = 0.0  # sum over groups of (group sum of F) x (group sum of h)
        group_f: list[Any] = [0.0] * QMC_REPLICATES
        group_h: list[Any] = [0.0] * QMC_REPLICATES
        squares: Any = 0.0
        shift: Any = None
        for start in range(0, total, group):
            chunk = u[start : start + group]
            values, event = self._f_event(be, x, chunk, batch)
            pair = values
            other = other_values = None
            if partner is not None:
                other = partner[start : start + group]
                other_values = self._f_event(be, x, other, batch)[0]
                pair = 0.5 * (values + other_values)
            sum_f = sum_f + xp.sum(pair, axis=0)
            if jacobian:
                score = self.kernel._score(be, chunk, 1)
                q = xp.tensordot(values, score, ([0], [0]))
                h = score
                if other is not None:
                    other_score = self.kernel._score(be, other, 1)
                    q = 0.5 * (q + xp.tensordot(other_values, other_score, ([0], [0])))
                    h = 0.5 * (score + other_score)
                sum_q = sum_q + q
                if baseline:
                    sum_h = sum_h + xp.sum(h, axis=0)
                    if qmc:
                        r = start // per
                        group_f[r] = group_f[r] + xp.sum(pair, axis=0)
                        group_h[r] = group_h[r] + xp.sum(h, axis=0)
                    else:
                        cross = cross + xp.tensordot(pair, h, ([0], [0]))
            if want_stderr and not qmc:
                if shift is None:
                    shift = be.stop_gradient(pair[0])
                centred = pair - shift
                squares = squares + xp.sum(centred * centred, axis=0)
            elif want_stderr and not baseline:  # else summed above
                r = start // per
                group_f[r] = group_f[r] + xp.sum(pair, axis=0)
        count = float(total)
        value = sum_f / count
        out_shape = batch + event
        jac = None
        if jacobian:
            estimate = sum_q
            if baseline:
                if qmc:
                    cross = sum(
                        xp.reshape(f, (*f.shape, 1)) * h
                        for f, h in zip(group_f, group_h, strict=True)
                    )
                product = xp.reshape(sum_f, (*sum_f.shape, 1)) * sum_h
                estimate = estimate - (product - cross) / float(total - per)
            jac = estimate * (1.0 / (count * self.width))
        stderr = None
        if want_stderr and qmc:
            stderr = _replicate_stderr(xp, [f / float(per) for f in group_f])
        elif want_stderr:
            mean = value - shift
            variance = (squares - count * mean * mean) / float(max(total - 1, 1))
            stderr = xp.sqrt(xp.maximum(variance, be.const(0.0, x)) / count)
        # NaN in a row gives NaN out for that row (f's own answer there, an argmax of
        # NaN, is arbitrary)
        missing = xp.reshape(xp.any(xp.isnan(x), axis=-1), batch + (1,))
        nan = be.const(math.nan, x)
        value = xp.where(missing, nan, value)
        if jac is not None:
            jac = xp.where(xp.reshape(missing, batch + (1, 1)), nan, jac)
        if stderr is not None:
            stderr = xp.reshape(be.stop_gradient(xp.where(missing, nan, stderr)), out_shape)
        return xp.reshape(value, out_shape), jac, stderr

    def hard(self, be: Backend, x: Array) -> Array:
        """``f(x)`` itself, checked (its shape ``batch + event`` sizes the Jacobian)."""
        return call_event(be, self.f, x, x.ndim - 1)

    @staticmethod
    def keeps_jacobian(x: Array, hard: Any) -> bool:
        """Whether the backward pass keeps the Jacobian of ``g`` at ``x`` (``batch x m x
        n`` elements, at most :data:`JACOBIAN_ELEMENTS`) rather than ``x`` and the draws,
        evaluating ``f`` again for :meth:`perturbed_vjp`; ``hard`` is ``f(x)`` or its
        shape (``jax.eval_shape``)."""
        return math.prod(hard.shape) * x.shape[-1] <= JACOBIAN_ELEMENTS

    def perturbed_vjp(self, be: Backend, x: Array, p: Array, cotangent: Array) -> Array:
        """``d/dx sum(cotangent * g(x))`` on the draws ``p``: the score Jacobian of the
        scalar function ``<cotangent, f>`` (one row of :meth:`perturbed`'s, so the same
        estimate as contracting the full Jacobian), evaluating ``f`` again."""
        xp = be.xp
        batch = tuple(x.shape[:-1])
        weights = xp.reshape(cotangent, (*batch, -1))

        def contracted(y: Array) -> Array:
            out = call_event(be, self.f, y, 1 + len(batch))
            flat = xp.reshape(out, (*out.shape[: 1 + len(batch)], -1))
            return xp.sum(flat * weights, axis=-1)

        _, jacobian, _ = replace(self, f=contracted).perturbed(be, x, p, jacobian=True)
        assert jacobian is not None
        return xp.reshape(jacobian, x.shape)

    def _f_event(
        self, be: Backend, x: Array, u: Array, batch: tuple[int, ...]
    ) -> tuple[Array, tuple[int, ...]]:
        """``f(x - w u)`` for the draws ``u`` (``(c, n)``) against every row of ``x``:
        shape ``(c, *batch, m)``, and ``f``'s output event shape (flattened to ``m``)."""
        ones = (1,) * len(batch)
        y = x - self.width * be.xp.reshape(u, (u.shape[0], *ones, u.shape[1]))
        out = call_event(be, self.f, y, 1 + len(batch))
        event = tuple(out.shape[1 + len(batch) :])
        return be.xp.reshape(out, (u.shape[0], *batch, math.prod(event))), event

    def perturbed_max(
        self, be: Backend, theta: Array, p: Array, target: Array
    ) -> tuple[Array, Array]:
        """``F(theta) - <target, theta>``, with ``F(theta) = E[<y*(theta - wU), theta -
        wU>]``, and the gradient of ``F``, ``E[y*(theta - wU)]``, for ``f = y*`` a
        maximizer of the linear objective ``<y, theta>`` (its output has ``theta``'s
        shape).

        ``F`` is the perturbed maximum, convex; its gradient is the perturbed maximizer,
        by the pathwise (envelope) derivative ``d/dtheta max_y <y, theta> = y*(theta)``
        (Berthet et al. 2020), exact for every draw, so no score is needed. Each draw
        adds ``<y* - target, theta> - w <y*, U>``: where the solution is the target the
        first term is exactly 0, so the loss keeps its digits at any ``|theta|`` (``F``
        less ``<target, theta>`` formed after the mean loses ``eps |theta|``: 7% of
        the loss at ``theta = 1e5``, ``w = 0.1`` in float32).
        """
        xp = be.xp
        batch = tuple(theta.shape[:-1])
        u = self.kernel._quantile(be, p)
        draws = [u]
        if self.antithetic:
            draws.append(-u if self.kernel.symmetric else self.kernel._quantile(be, 1.0 - p))
        group = _group_size(theta, p.shape[0])
        ones = (1,) * len(batch)
        total: Any = 0.0
        solution: Any = 0.0
        for d in draws:
            for start in range(0, p.shape[0], group):
                chunk = d[start : start + group]
                shift = xp.reshape(chunk, (chunk.shape[0], *ones, chunk.shape[1]))
                perturbed = theta - self.width * shift
                y = call_event(be, self.f, perturbed, 1 + len(batch))
                if tuple(y.shape[1:]) != tuple(theta.shape):
                    raise ValueError(
                        "the maximizer must return an array of theta's shape "
                        f"{tuple(theta.shape)} (a solution y with objective <y, theta>); "
                        f"got shape {tuple(y.shape[1:])}"
                    )
                # <y, theta - wU> - <target, theta>, the cancelling part formed exactly
                value = xp.sum((y - target) * theta, axis=-1) - self.width * xp.sum(
                    y * shift, axis=-1
                )
                total = total + xp.sum(value, axis=0)
                solution = solution + xp.sum(y, axis=0)
        count = float(p.shape[0] * len(draws))
        return total / count, solution / count


def _replicate_stderr(xp: Any, means: list[Array]) -> Array:
    """The standard error of the mean of ``QMC_REPLICATES`` independent replicate means
    (the spread of randomized QMC estimates)."""
    centre = sum(means) / float(QMC_REPLICATES)
    spread = sum((m - centre) * (m - centre) for m in means)
    return xp.sqrt(spread / float(QMC_REPLICATES * (QMC_REPLICATES - 1)))


def sobol_samples(seed: Any, replicates: int, count: int, dim: int = 0) -> np.ndarray:
    """``replicates`` independently scrambled Sobol sequences of ``count`` (a power of
    two) points each, in (0, 1), one after the other (``scipy.stats.qmc``): shape
    ``(replicates * count,)``, or ``(replicates * count, dim)`` for ``dim >= 1``."""
    from scipy.stats import qmc

    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    points = [
        qmc.Sobol(d=max(dim, 1), scramble=True, seed=rng).random_base2(count.bit_length() - 1)
        for _ in range(replicates)
    ]
    points = [p if dim else p[:, 0] for p in points]
    margin = float(np.finfo(np.float64).eps)
    return np.concatenate(points) * (1.0 - 2.0 * margin) + margin


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


def call_event(be: Backend, f: Callable[[Array], Array], y: Array, batch_ndim: int) -> Array:
    """``f(y)`` for a function of vectors (``y``'s last axis), checked: an array of
    ``y``'s framework whose shape starts with ``y``'s first ``batch_ndim`` axes (its
    batch), cast to ``y``'s dtype; ``f`` may return any event shape after them."""
    out = f(y)
    try:
        out_backend = backend_of(out)
    except TypeError:
        out_backend = None
    if out_backend is not be or not hasattr(out, "shape"):
        raise TypeError(
            f"f must return an array of the same framework as its input ({be.name}); "
            f"got {type(out).__name__}"
        )
    batch = tuple(y.shape[:batch_ndim])
    if tuple(out.shape[:batch_ndim]) != batch:
        raise ValueError(
            "f must map the last axis of its input to an array and keep the leading "
            f"(batch) axes: f(y) for y of shape {tuple(y.shape)} must have shape "
            f"{batch} + (...); got {tuple(out.shape)}"
        )
    if out.dtype != y.dtype:
        xp = be.xp
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
