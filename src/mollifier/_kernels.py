"""Smoothing kernels (nascent delta functions) as data.

A kernel is a symmetric probability density ``k`` in standard form; the width ``w`` is
its scale, ``k_w(u) = k(u / w) / w``. Each kernel knows its density, its CDF ``K``, the
truncated power moments ``P_j(t) = E[(t - U)_+^j]`` (``P_0 = K``, ``P_1`` the smoothed
ramp, ``P_2`` twice the smoothed half-square), its characteristic function, ``E|U|``,
``E[U^2]``, its support and a sampler. The engines in ``_engine.piecewise`` and
``_engine.staircase`` are written once against this interface, and what the rest of the
library needs to know about a kernel (which functions it admits, the principal-value
ramp sum, the gate constant) is asked of the kernel, never tested by name.

Every internal method takes a :class:`~mollifier._backend.Backend` and arrays of its
framework; the public methods find the backend from their argument.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from . import _polynomials as poly
from ._backend import Array, Backend, as_float_array, finish, memoize

_SQRT_2PI = math.sqrt(2.0 * math.pi)
_MAX_STAIRCASE_TERMS = 64
# The Gaussian tails underflow float64 beyond |s| = 38.5; clamping there keeps
# ``s * ndtr(s)`` away from ``-inf * 0`` without changing any representable value.
_GAUSSIAN_TAIL_CLAMP = 40.0
_LOGISTIC_TAIL_CLAMP = 1000.0  # log(1 + e^s) is 0 below s = -746 in float64


def scaled(be: Backend, x: Array, c: float, width: Any) -> Array:
    """``t = (x - c) / w``, for an array width with derivatives finite where ``t`` is
    infinite (``x = ±inf``, or ``x / w`` beyond the dtype's range) or steep in the width
    (``d t / d w = -t / w`` beyond the dtype's range).

    Where ``t`` is infinite it is the constant ``±inf`` (a double where), so a kernel term
    at its limit passes ``0`` into the width's gradient, not ``0 * d t/d w = 0 * inf``;
    where only ``t / w`` overflows, ``t`` keeps its value and takes no derivative in the
    width (the kernel there is at its limit to the dtype's precision: ``|t| > max * w``).
    At NaN it is NaN with NaN derivatives in ``x``. A Python width carries no gradient:
    ``t`` is the plain quotient.
    """
    t = (x - c) / width
    if isinstance(width, float):
        return t
    xp = be.xp
    finite = xp.isfinite(t)
    steep = finite & ~xp.isfinite(t / width)
    held = xp.where(steep, be.stop_gradient(width), width)
    tame = (xp.where(finite, x, be.const(c, x)) - c) / held
    # NaN stays NaN with NaN derivatives in x (tanh's are finite at ±inf, where the
    # quotient's would put 0 * inf into the gradient of the unused branch)
    limit = xp.where(xp.isnan(t), xp.tanh(x), xp.sign(x - c) * be.const(math.inf, x))
    return xp.where(finite, tame, limit)


def _sign_consistent_reflection(be: Backend, t: Array) -> tuple[Array, Array]:
    """``(s, right)`` with ``s = -|t| <= 0`` and ``right = t >= 0``.

    ``s`` is built with ``where`` rather than ``abs`` so that its derivative at ``t = 0``
    is ``-1``, matching the right-continuous choice ``right = (t >= 0)`` made everywhere
    else; ``abs`` would give a zero derivative there and a wrong gradient at the kink.
    """
    right = t >= 0
    return be.xp.where(right, -t, t), right


class Kernel:
    """A smoothing kernel in standard form (width 1): symmetric, except for the noise
    laws of the perturbed form (:attr:`symmetric`).

    Attributes
    ----------
    name : str
        Registry name.
    support : float
        Half-width of the support (``inf`` for kernels on the whole line).
    mean_abs : float
        ``E|U|``, the constant of the Lipschitz error bound ``L * w * E|U|``.
    second_moment : float
        ``E[U^2]`` (``inf`` for the Cauchy kernel).
    smoothness : str
        Differentiability class of the CDF, e.g. ``"C^inf"``.
    """

    name: str = ""
    support: float = math.inf
    mean_abs: float = math.nan
    second_moment: float = math.nan
    smoothness: str = ""
    max_ramp_degree: int = 2
    symmetric: bool = True
    """Whether ``k(-u) = k(u)``. The closed forms (truncated moments reflected about 0,
    real characteristic functions, principal values), the error bounds, ``tol=`` and
    antithetic pairs ``(U, -U)`` assume it; an asymmetric kernel (Gumbel) serves only
    the numerical methods of :func:`mollifier.smooth` (:func:`get_kernel` with
    ``numerical=True``), with antithetic pairs ``(K^-1(p), K^-1(1 - p))``."""
    density_kinks: tuple[float, ...] = ()
    """Where the density or one of its derivatives jumps (the ends of a compact
    support, Laplace's peak): quadrature in the exact engine splits there. A kernel
    with a kink it does not declare is integrated less accurately, never wrongly."""

    def __repr__(self) -> str:
        return f"mollifier.kernels[{self.name!r}]"

    # -- per-kernel data, implemented by subclasses -------------------------------
    def _pdf(self, be: Backend, u: Array) -> Array:
        raise NotImplementedError

    def _tail(self, be: Backend, s: Array, degree: int) -> Array:
        """``E[(s - U)_+^degree]`` for ``s <= 0`` (decays to 0 as ``s -> -inf``)."""
        raise NotImplementedError

    def _char_fn_np(self, omega: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _sample_np(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        raise NotImplementedError

    # -- generic, derived from the data ------------------------------------------
    def _density(self, be: Backend, u: Array, order: int = 0) -> Array:
        """``k^(order)(u)`` for the engines' slopes: 0 at ``u = ±inf`` with every
        derivative 0 there too, NaN at NaN.

        A double where: the density never sees an infinite ``u``, where its own formula
        has ``0 * inf`` in a derivative (``-u e^(-u^2/2)``, ``-2u`` times a clamp).
        """
        xp = be.xp
        infinite = xp.isinf(u)
        zero = be.const(0.0, u)
        tame = xp.where(infinite, zero, u)
        value = self._pdf(be, tame) if order == 0 else self._density_derivative(be, tame, order)
        return xp.where(infinite, zero, value)

    def _cdf(self, be: Backend, t: Array) -> Array:
        s, right = _sign_consistent_reflection(be, t)
        lower = self._tail(be, s, 0)
        return be.xp.where(right, 1.0 - lower, lower)

    def _beyond(self, be: Backend, s: Array, right: Array, degree: int) -> Array:
        """``P_j(t) - t^j theta(t)``, given the reflection ``(s, right)`` of ``t``.

        What smoothing adds to the truncated power ``t^j theta(t)``: a kernel tail that
        decays away from ``t = 0`` (towards ``E[U^2]`` for ``j = 2``). Symmetry gives
        ``P_j(t) = t^j + [j = 2] E[U^2] - (-1)^j P_j(-t)``.
        """
        lower = self._tail(be, s, degree)
        upper = -((-1.0) ** degree) * lower
        if degree == 2:
            upper = upper + self.second_moment
        return be.xp.where(right, upper, lower)

    def _ramp(self, be: Backend, t: Array, degree: int) -> Array:
        """``P_j(t) = E[(t - U)_+^j]`` for every real ``t``."""
        s, right = _sign_consistent_reflection(be, t)
        hard = be.xp.where(right, t**degree, be.const(0.0, t))
        return hard + self._beyond(be, s, right, degree)

    def _gate(self, be: Backend, x: Array, width: float) -> Array:
        """Product form ``x K(x / w)`` (GELU, swish); tends to 0 as ``x -> -inf``.

        The limits ``x`` (``+inf``) and 0 (``-inf``) by a double where: ``-inf * 0`` is
        NaN, and so would the derivative ``K + x k / w`` be at both ends (and where
        ``x / w`` overflows, where ``K(x / w)`` is exactly 0 or 1).
        """
        xp = be.xp
        zero = be.const(0.0, x)
        t = scaled(be, x, 0.0, width)
        infinite = xp.isinf(t)  # x infinite, or x / w beyond the dtype's range
        tame_x = xp.where(infinite, zero, x)
        out = tame_x * self._cdf(be, xp.where(infinite, zero, t))
        return xp.where(infinite, xp.where(x > 0, x, zero), out)

    def _gate_constant(self) -> float:
        """``sup_{s >= 0} s K(-s)``: the product form ``x K(x / w)`` misses ReLU by ``w``
        times it (numerically, on a fine grid of ``[0, 60]``)."""
        s = np.linspace(0.0, 60.0, 600001)
        values = s * np.asarray(self.cdf(-s))
        return float(values.max()) * (1.0 + 1e-9)

    # -- what the exact engine may ask of this kernel ------------------------------
    def _check_piecewise(self, degree: int, slopes: tuple[float, float]) -> None:
        """Raise ``ValueError`` where a piecewise polynomial of ``degree`` whose outer
        pieces have ``slopes`` has no finite convolution with this kernel.

        Decided by the kernel's moments: a quadratic piece needs ``E[U^2] < inf``, and a
        function that grows like ``|x|`` (outer slopes that differ) needs ``E|U| < inf``.
        """
        # comparisons, not math.isfinite: under torch.compile(dynamic=True) the moments
        # of a kernel held by a module are traced as symbolic floats, which it refuses
        if degree > 1 and not self.second_moment < math.inf:
            raise ValueError(
                f"kernel='{self.name}': the closed form covers pieces of degree <= 1 only "
                f"(the {self.name} kernel has no second moment, E[U^2] = inf); use another "
                "kernel"
            )
        if slopes[0] != slopes[1] and not self.mean_abs < math.inf:
            raise ValueError(
                f"kernel='{self.name}' diverges for this function: its outer pieces have "
                f"different slopes ({slopes[0]} and {slopes[1]}), so it grows like |x| and "
                f"the {self.name} kernel has no mean (E|U| = inf). ReLU, abs, hinge and "
                "leaky ReLU are such functions; step, sign, clip and the staircases are fine"
            )

    def _ramp_sum(self, be: Backend, ramps: list[tuple[float, float, Array]], width: float) -> Any:
        """``sum_i b_i w [P_1(t_i) - t_i theta(t_i)]`` over the slope changes ``b_i`` at
        ``c_i``, given as ``(c_i, b_i, t_i)`` with ``t_i = (x - c_i) / w``.

        Kernels without a mean override it with a principal value (the slope changes of
        an admissible function sum to zero).
        """
        total: Any = 0.0
        for _, b, t in ramps:
            s, right = _sign_consistent_reflection(be, t)
            total = total + (b * width) * self._beyond(be, s, right, 1)
        return total

    # -- numerical engine data (``mollifier.smooth`` of an arbitrary callable) ------
    quadrature_range: float = math.inf
    """Half-width of the ``u`` range integrated numerically (mass beyond < 1e-17)."""
    max_derivative_order: int = 2
    """Highest ``n`` with ``g^(n)(x) = w^-n E[f(x - wU) k^(n)(U) / k(U)]`` and point
    terms only (no ``f'``): ``k^(n-1)`` must be a function, not a distribution."""
    max_score_order: int = 2
    """Highest derivative whose Monte Carlo score estimator has finite variance,
    ``E[(k^(n)(U) / k(U))^2] < inf``."""

    def _density_derivative(self, be: Backend, u: Array, order: int) -> Array:
        """The classical derivative ``k^(order)(u)`` (``order`` 0..2), 0 off the support."""
        raise NotImplementedError

    def _derivative_atoms(self, order: int) -> tuple[tuple[float, float], ...]:
        """Point masses ``(u_a, c_a)`` of the distributional ``k^(order)`` beyond the
        classical part: ``c_a`` is the jump of ``k^(order-1)`` at ``u_a``."""
        return ()

    def _score(self, be: Backend, u: Array, order: int) -> Array:
        """``k^(order)(u) / k(u)`` on the support (the Stein / score-function weight)."""
        return self._density_derivative(be, u, order) / self._pdf(be, u)

    tail_power: float = math.inf
    """``p`` where the density falls like ``|u|^-p`` (``inf``: faster than any power):
    ``E[f(x - wU)]`` needs ``f`` to grow slower than ``|u|^(p - 1)``, as a principal
    value (``u`` paired with ``-u``) where the kernel has no mean."""

    panel_scale: float = math.inf
    """Panels are equal in ``asinh(u / panel_scale)``: about ``panel_scale`` times
    finer at the centre than in the far tails (``inf``: equal in ``u``)."""

    quadrature_in_angle: bool = False
    """Heavy tails are integrated in the angle ``u = tan(t)`` over ``(-pi/2, pi/2)``
    (stopping 1e-12 short of the ends keeps ``tan`` finite and drops a negligible mass)."""

    def _panel_edges(self, panels: int) -> np.ndarray:
        """Edges of ``panels`` panels in the quadrature variable ``t``."""
        if self.quadrature_in_angle:
            half_angle = 0.5 * math.pi * (1.0 - 1e-12)
            return np.linspace(-half_angle, half_angle, panels + 1)
        half = min(self.support, self.quadrature_range)
        if math.isinf(self.panel_scale):
            return np.linspace(-half, half, panels + 1)
        reach = math.asinh(half / self.panel_scale)
        edges = self.panel_scale * np.sinh(np.linspace(-reach, reach, panels + 1))
        edges[panels // 2] = 0.0 if panels % 2 == 0 else edges[panels // 2]
        return edges

    def _panel_point(self, be: Backend, t: Array) -> Array:
        """The kernel variable ``u(t)`` at the quadrature variable ``t``."""
        return be.xp.tan(t) if self.quadrature_in_angle else t

    def _panel_weight(self, be: Backend, t: Array, order: int) -> Array:
        """``k^(order)(u(t)) u'(t)``: the integrand's weight in the variable ``t``."""
        return self._density_derivative(be, t, order)

    def _quantile(self, be: Backend, p: Array) -> Array:
        """``K^-1(p)`` for ``p`` in (0, 1), by bisection on the CDF (64 halvings)."""
        xp = be.xp
        half = min(self.support, self.quadrature_range)
        lo = be.const(-half, p) + 0.0 * p
        hi = be.const(half, p) + 0.0 * p
        for _ in range(64):
            mid = 0.5 * (lo + hi)
            below = self._cdf(be, mid) < p
            lo, hi = xp.where(below, mid, lo), xp.where(below, hi, mid)
        return 0.5 * (lo + hi)

    # -- public, array-in array-out ----------------------------------------------
    def pdf(self, u: Array) -> Array:
        """Density ``k(u)`` of the standard kernel."""
        be, u_c, dtype = as_float_array(u, "u")
        return finish(be, self._pdf(be, u_c), dtype)

    def cdf(self, t: Array) -> Array:
        """Distribution function ``K(t) = P(U <= t)``: the step smoothed with width 1."""
        be, t_c, dtype = as_float_array(t, "t")
        return finish(be, self._cdf(be, t_c), dtype)

    def ramp(self, t: Array, degree: int = 1) -> Array:
        """Truncated power moment ``P_j(t) = E[(t - U)_+^j]`` for ``j = degree``.

        ``P_0`` is the CDF, ``P_1(x / w) * w`` is ReLU smoothed with width ``w``.
        """
        self._check_degree(degree)
        be, t_c, dtype = as_float_array(t, "t")
        return finish(be, self._ramp(be, t_c, degree), dtype)

    def partial_moment(self, z: Array, degree: int) -> Array:
        """Partial moment ``M_j(z) = ∫_{-inf}^{z} u^j k(u) du`` for ``j = degree <= 2``.

        Computed from the truncated moments by expanding ``(z - u)^j``; it cancels
        for large ``|z|``, where :meth:`ramp` is the stable quantity to use.
        """
        self._check_degree(degree)
        be, z_c, dtype = as_float_array(z, "z")
        cdf = self._cdf(be, z_c)
        if degree == 0:
            out = cdf
        elif degree == 1:
            out = z_c * cdf - self._ramp(be, z_c, 1)
        else:
            out = self._ramp(be, z_c, 2) + z_c * z_c * cdf - 2.0 * z_c * self._ramp(be, z_c, 1)
        return finish(be, out, dtype)

    def char_fn(self, omega: Any) -> np.ndarray:
        """Characteristic function ``E[exp(i omega U)]`` (real: the kernel is even).

        Evaluated with NumPy; it sets the damping of the Fourier series of staircases.
        """
        return self._char_fn_np(np.abs(np.asarray(omega, dtype=np.float64)))

    def sample(self, shape: int | tuple[int, ...], *, seed: Any = None) -> np.ndarray:
        """Draw standard-kernel samples with NumPy (``seed``: int or ``Generator``)."""
        rng = np.random.default_rng(seed)
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        return self._sample_np(rng, shape)

    def _check_degree(self, degree: int) -> None:
        if not isinstance(degree, int) or not 0 <= degree <= self.max_ramp_degree:
            raise ValueError(
                f"degree must be an integer in 0..{self.max_ramp_degree} for the "
                f"{self.name} kernel; got {degree!r}"
            )

    # -- staircases (floor family) -----------------------------------------------
    def _floor_offset(self, be: Backend, r: Array, width: float, eps: float) -> Array:
        """``S(r)`` with ``floor_w(m + r) = m + S(r)`` for integer ``m``, ``|r| <= 1/2``.

        Default: the cheaper of the direct sum over the nearest integer steps and the
        Fourier series damped by the characteristic function (Poisson summation), with
        term counts chosen so the truncation error is below ``eps``.
        """
        form, terms = _staircase_form(self, width, eps)
        if form == "direct":
            return self._floor_offset_direct(be, r, width, terms)
        return self._floor_offset_fourier(be, r, width, terms)

    def _staircase_direct_terms(self, width: float, eps: float) -> int | None:
        """``N`` where :meth:`_floor_offset` and :meth:`_floor_slope` are the plain direct
        sums over the steps at ``m - N .. m + N`` (:meth:`_floor_offset_direct`,
        :meth:`_floor_slope_direct`) at this width, ``None`` where they take another
        form: what an adapter's fused staircase may evaluate in their place."""
        form, terms = _staircase_form(self, width, eps)
        return terms if form == "direct" else None

    def _floor_slope(self, be: Backend, r: Array, width: float, eps: float) -> Array:
        """``S'(r) = sum_n k_w(r - n)``: the kernel wrapped on the circle, the derivative
        of every smooth staircase; the exact derivative of :meth:`_floor_offset` (same
        form, same terms)."""
        form, terms = _staircase_form(self, width, eps)
        if form == "direct":
            return self._floor_slope_direct(be, r, width, terms)
        return self._floor_slope_fourier(be, r, width, terms)

    def _floor_slope_fourier(self, be: Backend, r: Array, width: float, terms: int) -> Array:
        # d/dr [r - 1/2 + sum_k c_k sin(2 pi k r)] = 1 + sum_k 2 pi k c_k cos(2 pi k r)
        total = r * 0.0 + 1.0
        for k, c_k in enumerate(_fourier_coefficients(self, width, terms), start=1):
            total = total + (2.0 * math.pi * k * c_k) * be.xp.cos((2.0 * math.pi * k) * r)
        return total

    def _floor_slope_direct(self, be: Backend, r: Array, width: float, terms: int) -> Array:
        # d/dr of the direct sum: the nearest 2 terms + 1 densities
        inv_w = 1.0 / width
        total = self._pdf(be, -r * inv_w)
        for n in range(1, terms + 1):
            total = total + (self._pdf(be, (r - n) * inv_w) + self._pdf(be, -(r + n) * inv_w))
        return total * inv_w

    def _round_offset(self, be: Backend, r: Array, width: float, eps: float) -> Array:
        """``round_w(m + r) - m = floor_w(m + r + 1/2) - m`` for integer ``m``, ``|r| <= 1/2``."""
        shifted = r + 0.5  # in [0, 1]: reduced again about its nearest integer
        nearest = be.xp.round(shifted)
        return nearest + self._floor_offset(be, shifted - nearest, width, eps)

    def _round_slope(self, be: Backend, r: Array, width: float, eps: float) -> Array:
        """The derivative of :meth:`_round_offset`: the wrapped density at ``r + 1/2``."""
        shifted = r + 0.5
        return self._floor_slope(be, shifted - be.xp.round(shifted), width, eps)

    def _floor_offset_direct(self, be: Backend, r: Array, width: float, terms: int) -> Array:
        # floor_w(m + r) = m + sum_{n>=1} K((r - n)/w) - sum_{n>=0} K(-(n + r)/w)
        inv_w = 1.0 / width
        total = -self._cdf(be, -r * inv_w)
        for n in range(1, terms + 1):
            total = total + (self._cdf(be, (r - n) * inv_w) - self._cdf(be, -(r + n) * inv_w))
        return total

    def _floor_offset_fourier(self, be: Backend, r: Array, width: float, terms: int) -> Array:
        # floor_w(m + r) = m + r - 1/2 + sum_k khat(2 pi k w) sin(2 pi k r) / (pi k)
        coefficients = _fourier_coefficients(self, width, terms)
        total = r - 0.5
        for k, c_k in enumerate(coefficients, start=1):
            total = total + c_k * be.xp.sin((2.0 * math.pi * k) * r)
        return total


@memoize
def density_at_zero(kernel: Kernel) -> float:
    """``k(0)``, the peak of every kernel here (a Python float, evaluated once)."""
    return float(kernel.pdf(np.asarray(0.0)))


@memoize
def _fourier_coefficients(kernel: Kernel, width: float, terms: int) -> tuple[float, ...]:
    k = np.arange(1, terms + 1, dtype=np.float64)
    return tuple(float(c) for c in kernel.char_fn(2.0 * math.pi * k * width) / (math.pi * k))


def _pair_constant(c: float, half: float) -> float:
    """``G_c = 2 cosh(c) e^{-U} = e^{c - U} + e^{-c - U}`` (inf once it is beyond any float)."""
    return math.exp(c - half) + math.exp(-c - half) if c - half < 700.0 else math.inf


@memoize
def _staircase_form(kernel: Kernel, width: float, eps: float) -> tuple[str, int]:
    """``("direct", N)`` or ``("fourier", K)``: the cheaper form within ``eps``."""
    n_direct, n_fourier = _staircase_terms(kernel, width, eps)
    if n_direct is not None and (n_fourier is None or 2 * n_direct + 1 <= n_fourier):
        return "direct", n_direct
    if n_fourier is None:  # pragma: no cover - kernels without either form override
        raise ValueError(f"no convergent staircase form for the {kernel.name} kernel")
    return "fourier", n_fourier


@memoize
def _staircase_terms(kernel: Kernel, width: float, eps: float) -> tuple[int | None, int | None]:
    """Fewest direct-sum and Fourier terms whose truncation error is below ``eps``.

    Direct: the omitted steps have opposite signs, so the error is at most
    ``sum_{j>=0} K(-(N + 1/2 + j)/w)``. Fourier: at most ``sum_{k>K} |khat(2 pi k w)|/(pi k)``.
    Both tails are summed numerically over 20000 terms (plus the integral beyond).
    """
    j = np.arange(0, 20000, dtype=np.float64)
    cdf = np.asarray(kernel.cdf(-(j + 0.5) / width), dtype=np.float64)
    tail_after = np.cumsum(cdf[::-1])[::-1]
    ok = np.nonzero(tail_after[: _MAX_STAIRCASE_TERMS + 1] <= eps)[0]
    direct = int(ok[0]) if ok.size and cdf[-1] < eps * 1e-6 else None
    fourier = None
    k = j + 1.0
    magnitude = np.abs(kernel.char_fn(2.0 * math.pi * k * width)) / (math.pi * k)
    remaining = np.cumsum(magnitude[::-1])[::-1]
    ok_f = np.nonzero(remaining[: _MAX_STAIRCASE_TERMS + 1] <= eps)[0]
    if ok_f.size and magnitude[-1] < eps * 1e-6:
        fourier = int(ok_f[0])
    return direct, fourier


# -------------------------------------------------------------------------------------
class Gaussian(Kernel):
    r"""Standard normal kernel :math:`k(u) = e^{-u^2/2}/\sqrt{2\pi}`; ``w`` is sigma."""

    name = "gaussian"
    mean_abs = math.sqrt(2.0 / math.pi)
    second_moment = 1.0
    smoothness = "C^inf"

    def _pdf(self, be: Backend, u: Array) -> Array:
        return be.xp.exp(-0.5 * u * u) / _SQRT_2PI

    def _cdf(self, be: Backend, t: Array) -> Array:
        return be.ndtr(t)

    def _tail(self, be: Backend, s: Array, degree: int) -> Array:
        xp = be.xp
        # Phi(s) is 0 below -38.5 already; the clamp keeps -s phi(s), the derivative of
        # phi, away from -inf * 0 (and s Phi(s) in the tails below)
        s = xp.maximum(s, be.const(-_GAUSSIAN_TAIL_CLAMP, s))
        if degree == 0:
            return be.ndtr(s)
        finfo = xp.finfo(s.dtype)
        start, series = _gaussian_far_tails(float(finfo.smallest_normal), float(finfo.eps))
        # near: phi(s) + s Phi(s) and (s^2 + 1) Phi(s) + s phi(s) cancel to the tail's
        # size, phi(s) / s^2 or 2 phi(s) / |s|^3: a relative error of s^2 eps (the
        # problem's own conditioning) while it is a normal number; beyond ``start`` it
        # would be subnormal and the cancellation leaves no digit (negative values), so
        # there the tail is phi(s) times its asymptotic series in 1 / s^2 (double where)
        density, cdf = self._pdf(be, s), be.ndtr(s)
        if degree == 1:  # E(s - U)_+ = s Phi(s) + phi(s)
            near = density + s * cdf
        else:  # E(s - U)_+^2
            near = (s * s + 1.0) * cdf + s * density
        far = s < -start
        inverse = 1.0 / xp.where(far, s, be.const(-start, s))  # -1/a, never 1/0
        u = inverse * inverse
        beyond = density * (u * poly.horner(series[degree - 1], u))
        if degree == 2:
            beyond = beyond * -inverse
        return xp.where(far, beyond, near)

    def _char_fn_np(self, omega: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * omega * omega)

    def _sample_np(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return rng.standard_normal(shape)

    quadrature_range = 9.0  # P(|U| > 9) = 2e-19

    def _density_derivative(self, be: Backend, u: Array, order: int) -> Array:
        # k' = -u k, k'' = (u^2 - 1) k
        return self._score(be, u, order) * self._pdf(be, u)

    def _score(self, be: Backend, u: Array, order: int) -> Array:
        return (u * 0.0 + 1.0, -u, u * u - 1.0)[order]


@memoize
def _gaussian_far_tails(tiny: float, eps: float) -> tuple[float, tuple[tuple[float, ...], ...]]:
    """``(start, (c_1, c_2))``: for ``a = -s >= start`` the Gaussian tails are
    ``E(s - U)_+ = phi(a) u sum_n c_1n u^n`` and ``E(s - U)_+^2 = phi(a) (u / a) sum_n
    c_2n u^n`` with ``u = 1/a^2``, to within ``eps / 8``.

    ``start`` is where ``phi(a) / a^2`` falls below ``tiny`` (the direct forms would be
    subnormal). The Mills ratio ``Phi(-a) / phi(a) ~ sum_n m_n a^-(2n+1)``, ``m_n =
    (-1)^n (2n - 1)!!``, gives ``1 - a M = -sum_{n>=1} m_n u^n`` and ``(a^2 + 1) M - a =
    sum_{k>=1} (m_{k+1} + m_k) a^-(2k+1)``.
    """
    low, high = 1.0, _GAUSSIAN_TAIL_CLAMP
    for _ in range(60):  # bisection on log phi(a) - 2 log a = log tiny
        mid = 0.5 * (low + high)
        if -0.5 * mid * mid - math.log(_SQRT_2PI * mid * mid) > math.log(tiny):
            low = mid
        else:
            high = mid
    start, u = low, 1.0 / (low * low)
    m = [1.0]
    while abs(m[-1]) * u ** (len(m) - 1) > eps / 64.0:  # terms fall like (2n - 1)!! u^n
        m.append(-m[-1] * (2 * len(m) - 1))
    m += [-m[-1] * (2 * len(m) - 1)]
    first = tuple(-m[n] for n in range(1, len(m)))
    second = tuple(m[k + 1] + m[k] for k in range(1, len(m) - 1))
    return start, (first, second)


# Li_2(u) = sum_n B_n z^(n+1)/(n+1)!, z = -log(1 - u): converges like (z / 2 pi)^n and is
# used for u <= 1/2 (z <= log 2), where 19 terms reach 1e-19.
_DILOG_SERIES = tuple(
    [0.0] + [float(b / math.factorial(n + 1)) for n, b in enumerate(poly.bernoulli_numbers(18))]
)


class Logistic(Kernel):
    r"""Logistic kernel :math:`k(u) = \sigma(u)\sigma(-u)`; ``K`` is the sigmoid.

    ``w = 1/t`` of Su (2021)'s nascent delta :math:`t e^{tx}/(1+e^{tx})^2`; ReLU smooths to
    ``w * softplus(x / w)``.
    """

    name = "logistic"
    mean_abs = 2.0 * math.log(2.0)
    second_moment = math.pi**2 / 3.0
    smoothness = "C^inf"

    def _pdf(self, be: Backend, u: Array) -> Array:
        e = be.xp.exp(-be.xp.abs(u))
        return e / ((1.0 + e) * (1.0 + e))

    def _cdf(self, be: Backend, t: Array) -> Array:
        return be.expit(t)

    def _tail(self, be: Backend, s: Array, degree: int) -> Array:
        if degree == 0:
            return be.expit(s)
        # clamped where softplus is 0 in every dtype already: torch's logaddexp has a
        # second derivative of inf / inf at -inf
        z = be.softplus(be.xp.maximum(s, be.const(-_LOGISTIC_TAIL_CLAMP, s)))
        if degree == 1:
            return z
        # E(s - U)_+^2 = -2 Li_2(-e^s) = 2 [Li_2(u) + z^2 / 2], u = sigmoid(s) (Landen)
        return 2.0 * poly.horner(_DILOG_SERIES, z) + z * z

    # -- staircases: up- and down-steps in symmetric pairs ---------------------------
    # sigma(u - c) + sigma(u + c) - 1 = sinh u / (cosh u + cosh c), with u = r/w, c the
    # step's distance in units of w. Scaled by e^{-U}, U = 1/(2w) >= |u|, every pair is
    # D / (P + G_c) with A = e^{u - U}, B = e^{-u - U}, D = A - B, P = A + B and the
    # constant G_c = 2 cosh(c) e^{-U}: two exponentials for all the pairs, and nothing
    # overflows (A, B <= 1; an underflowing A or B is negligible beside G_c >= 1).
    def _pair_basis(self, be: Backend, r: Array, width: float) -> tuple[Array, Array]:
        xp = be.xp
        u, half = r * (1.0 / width), 0.5 / width
        a, b = xp.exp(u - half), xp.exp(-u - half)
        return a - b, a + b

    def _pair_sum(self, be: Backend, r: Array, width: float, centres: list[float]) -> Array:
        difference, total_ab = self._pair_basis(be, r, width)
        total = 0.0 * r
        for c in centres:
            total = total + difference / (total_ab + _pair_constant(c / width, 0.5 / width))
        return total

    def _pair_slope(self, be: Backend, r: Array, width: float, centres: list[float]) -> Array:
        # d/du D / (P + G) = (P^2 - D^2 + P G) / (P + G)^2 with P^2 - D^2 = 4 AB = 4 e^{-2U};
        # divided through by G^2 (with g = 1/G, 0 for a step too far to matter)
        _, total_ab = self._pair_basis(be, r, width)
        four_ab = 4.0 * math.exp(-1.0 / width)
        total = 0.0 * r
        for c in centres:
            g = 1.0 / _pair_constant(c / width, 0.5 / width)
            scaled = total_ab * g
            denominator = scaled + 1.0
            total = total + (scaled + four_ab * g * g) / (denominator * denominator)
        return total * (1.0 / width)

    def _staircase_direct_terms(self, width: float, eps: float) -> int | None:
        return None  # its own staircase forms (see _floor_offset)

    def _floor_offset(self, be: Backend, r: Array, width: float, eps: float) -> Array:
        form, terms = _staircase_form(self, width, eps)
        if form != "direct":
            return super()._floor_offset(be, r, width, eps)
        # the step at 0 alone (-sigma(-u) keeps its relative accuracy), then pairs at +-n
        centre = -be.expit(-r * (1.0 / width))
        if terms == 0:
            return centre
        return centre + self._pair_sum(be, r, width, [float(n) for n in range(1, terms + 1)])

    def _floor_slope(self, be: Backend, r: Array, width: float, eps: float) -> Array:
        form, terms = _staircase_form(self, width, eps)
        if form != "direct":
            return super()._floor_slope(be, r, width, eps)
        below = be.expit(-r * (1.0 / width))
        centre = below * (1.0 - below) * (1.0 / width)
        if terms == 0:
            return centre
        return centre + self._pair_slope(be, r, width, [float(n) for n in range(1, terms + 1)])

    def _round_offset(self, be: Backend, r: Array, width: float, eps: float) -> Array:
        # every step of round is paired about r = 0: at +-1/2, +-3/2, ...
        form, terms = _staircase_form(self, width, eps)
        if form != "direct":
            return super()._round_offset(be, r, width, eps)
        return self._pair_sum(be, r, width, [j + 0.5 for j in range(terms + 1)])

    def _round_slope(self, be: Backend, r: Array, width: float, eps: float) -> Array:
        form, terms = _staircase_form(self, width, eps)
        if form != "direct":
            return super()._round_slope(be, r, width, eps)
        return self._pair_slope(be, r, width, [j + 0.5 for j in range(terms + 1)])

    def _char_fn_np(self, omega: np.ndarray) -> np.ndarray:
        x = np.pi * omega
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.where(x > 1400.0, 0.0, x / np.sinh(np.minimum(x, 1400.0)))
        return np.where(x < 1e-8, 1.0, out)

    def _sample_np(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return rng.logistic(size=shape)

    quadrature_range = 40.0  # P(|U| > 40) = 8e-18
    panel_scale = 4.0

    def _density_derivative(self, be: Backend, u: Array, order: int) -> Array:
        return self._score(be, u, order) * self._pdf(be, u)

    def _score(self, be: Backend, u: Array, order: int) -> Array:
        # k' = -k tanh(u/2) and, with tanh(u/2)' = 2k, k'' = k (tanh(u/2)^2 - 2k)
        if order == 0:
            return u * 0.0 + 1.0
        slope = be.xp.tanh(0.5 * u)
        return -slope if order == 1 else slope * slope - 2.0 * self._pdf(be, u)

    def _quantile(self, be: Backend, p: Array) -> Array:
        return be.xp.log(p) - be.xp.log1p(-p)


class Laplace(Kernel):
    r"""Laplace kernel :math:`k(u) = e^{-|u|}/2`."""

    name = "laplace"
    mean_abs = 1.0
    second_moment = 2.0
    smoothness = "C^1"
    density_kinks = (0.0,)

    def _pdf(self, be: Backend, u: Array) -> Array:
        # -|u| by reflection: its derivative at the kink is the right-hand one, as for
        # the CDF (abs would give 0 there)
        return 0.5 * be.xp.exp(_sign_consistent_reflection(be, u)[0])

    def _tail(self, be: Backend, s: Array, degree: int) -> Array:
        # E(s - U)_+^j = j! e^s / 2 for s <= 0
        return (0.5 * math.factorial(degree)) * be.xp.exp(s)

    def _char_fn_np(self, omega: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + omega * omega)

    def _sample_np(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return rng.laplace(size=shape)

    quadrature_range = 40.0  # P(|U| > 40) = 4e-18
    panel_scale = 4.0

    def _density_derivative(self, be: Backend, u: Array, order: int) -> Array:
        return self._score(be, u, order) * self._pdf(be, u)

    def _score(self, be: Backend, u: Array, order: int) -> Array:
        # k' = -sign(u) k; k'' = k away from 0, where k' jumps by -1 (an atom)
        return -be.xp.sign(u) if order == 1 else u * 0.0 + 1.0

    def _derivative_atoms(self, order: int) -> tuple[tuple[float, float], ...]:
        return ((0.0, -1.0),) if order == 2 else ()

    def _panel_edges(self, panels: int) -> np.ndarray:
        # an even count puts an edge at the density's kink u = 0
        return super()._panel_edges(panels + panels % 2)

    def _quantile(self, be: Backend, p: Array) -> Array:
        xp = be.xp
        lower = p < 0.5
        safe = xp.where(lower, p, 1.0 - p)
        magnitude = xp.log(2.0 * safe)
        return xp.where(lower, magnitude, -magnitude)

    def _staircase_direct_terms(self, width: float, eps: float) -> int | None:
        return None  # its own staircase forms (see _floor_offset)

    def _floor_offset(self, be: Backend, r: Array, width: float, eps: float) -> Array:
        # The step sums are geometric; with rho = |r|:
        # E = e^{-rho/w} expm1(-(1 - 2 rho)/w) / (2 expm1(-1/w)); S = -E (r >= 0), E - 1 (r < 0)
        xp = be.xp
        rho, right = _sign_consistent_reflection(be, r)
        rho = -rho
        denominator = 2.0 * math.expm1(-1.0 / width)
        excess = xp.exp(-rho / width) * xp.expm1(-(1.0 - 2.0 * rho) / width) / denominator
        return xp.where(right, -excess, excess - 1.0)

    def _floor_slope(self, be: Backend, r: Array, width: float, eps: float) -> Array:
        # the wrapped density, a geometric sum: (e^{-rho/w} + e^{-(1-rho)/w}) / (2w (1 - e^{-1/w}))
        xp = be.xp
        rho = -_sign_consistent_reflection(be, r)[0]
        near = xp.exp(-rho / width) + xp.exp(-(1.0 - rho) / width)
        return near * (1.0 / (-2.0 * width * math.expm1(-1.0 / width)))


class Cauchy(Kernel):
    r"""Cauchy kernel :math:`k(u) = 1/(\pi(1+u^2))`; ``w`` is the ``a`` of Su (2021).

    Heavy tails: ``E|U|`` is infinite, so ReLU, abs, hinge and leaky ReLU diverge.
    Bounded functions (step, sign, clip) and staircases (as principal values) are fine.
    """

    name = "cauchy"
    mean_abs = math.inf
    second_moment = math.inf
    smoothness = "C^inf"
    max_ramp_degree = 0

    def _pdf(self, be: Backend, u: Array) -> Array:
        # beyond |u| = 1 as a^2 / (pi (1 + a^2)) in a = 1/u: u^2 overflows (and 2u in the
        # derivative, at the bfloat16 max) long before the density underflows
        xp = be.xp
        far = xp.abs(u) > 1.0
        near_u = xp.where(far, be.const(0.0, u), u)
        a = 1.0 / xp.where(far, u, be.const(2.0, u))
        return xp.where(
            far, a * a / (math.pi * (1.0 + a * a)), 1.0 / (math.pi * (1.0 + near_u * near_u))
        )

    def _tail(self, be: Backend, s: Array, degree: int) -> Array:
        if degree != 0:
            raise ValueError(
                "the Cauchy kernel has no finite moments: E[(t - U)_+^j] is infinite for j >= 1"
            )
        # K(s) = arctan(1 / |s|) / pi for s <= 0, accurate far in the tail; 0 at -inf by
        # a double where (the second derivative there would be inf / inf)
        xp = be.xp
        infinite = xp.isinf(s)
        tame = xp.where(infinite, be.const(-1.0, s), s)
        return xp.where(infinite, be.const(0.0, s), xp.atan2(be.const(1.0, s), -tame) / math.pi)

    def _gate(self, be: Backend, x: Array, width: float) -> Array:
        # x K(x/w) = (x)_+ - (w/pi) g(-|x|/w) with g(s) = |s| arctan(1/|s|) -> 1: exact in
        # the far tail (no subnormal arctan), and the limit at -inf is -w/pi, not 0
        s, right = _sign_consistent_reflection(be, scaled(be, x, 0.0, width))
        positive = be.xp.where(right, x, be.const(0.0, x))
        return positive - (width / math.pi) * cauchy_g(be, s)

    def _gate_constant(self) -> float:
        return 1.0 / math.pi  # s arctan(1/s)/pi increases to 1/pi

    def _ramp_sum(self, be: Backend, ramps: list[tuple[float, float, Array]], width: float) -> Any:
        """Slope changes smoothed by the Cauchy kernel (principal value).

        Each ramp uses the regularized tail ``R(t) = -(g(t) + log1p(t^2) / 2) / pi`` with
        ``g(t) = |t| arctan(1 / |t|)``; the slope changes sum to zero (checked by
        :meth:`_check_piecewise`), so the logarithms are taken in differences against
        the first ramp, ``log1p(t_i^2) - log1p(t_0^2)``, written as ``log1p`` of a ratio
        where that difference is small.
        """
        if not ramps:
            return 0.0
        c0, _, t0 = ramps[0]
        g0 = cauchy_g(be, _sign_consistent_reflection(be, t0)[0])
        total: Any = 0.0
        for c, b, t in ramps[1:]:
            delta = (c0 - c) / width  # t - t0
            log_difference = _log1p_square_difference(be, t, t0, delta)
            g = cauchy_g(be, _sign_consistent_reflection(be, t)[0])
            total = total + (-b * width / math.pi) * ((g - g0) + 0.5 * log_difference)
        return total

    def _char_fn_np(self, omega: np.ndarray) -> np.ndarray:
        return np.exp(-omega)

    def _sample_np(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return rng.standard_cauchy(shape)

    def _density_derivative(self, be: Backend, u: Array, order: int) -> Array:
        return self._score(be, u, order) * self._pdf(be, u)

    def _score(self, be: Backend, u: Array, order: int) -> Array:
        # k' / k = -2u / (1 + u^2), k'' / k = (6u^2 - 2) / (1 + u^2)^2
        return _rational_score(be, u, order, 2.0, 6.0, 2.0)

    # The heavy tails are integrated in the angle: u = tan(theta), k(u) du = d theta / pi
    # (the mass left beyond the last panel is 6e-13).
    quadrature_in_angle = True
    tail_power = 2.0

    def _panel_weight(self, be: Backend, t: Array, order: int) -> Array:
        # k^(n)(tan t) sec^2 t: 1/pi, -sin(2t)/pi, (6 sin^2 cos^2 - 2 cos^4)/pi
        if order == 0:
            return t * 0.0 + 1.0 / math.pi
        sin, cos = be.xp.sin(t), be.xp.cos(t)
        if order == 1:
            return (-2.0 / math.pi) * sin * cos
        cos2 = cos * cos
        return (6.0 * sin * sin * cos2 - 2.0 * cos2 * cos2) / math.pi

    def _quantile(self, be: Backend, p: Array) -> Array:
        return be.xp.tan(math.pi * (p - 0.5))

    def _staircase_direct_terms(self, width: float, eps: float) -> int | None:
        return None  # its own staircase forms (see _floor_offset)

    def _floor_offset(self, be: Backend, r: Array, width: float, eps: float) -> Array:
        # Poisson kernel (principal value of the step sum):
        # floor_a(m + r) = m + r - 1/2 + atan2(sin 2 pi r, expm1(2 pi a) + 2 sin^2 pi r) / pi
        xp = be.xp
        lift = math.expm1(2.0 * math.pi * width) if width < 100.0 else math.inf
        if lift * eps > 1.0:  # the harmonic part is below eps: the limit x - 1/2
            return r - 0.5
        sin_half = xp.sin(math.pi * r)
        angle = xp.atan2(xp.sin(2.0 * math.pi * r), lift + 2.0 * sin_half * sin_half)
        return r - 0.5 + angle / math.pi

    def _floor_slope(self, be: Backend, r: Array, width: float, eps: float) -> Array:
        # the wrapped Cauchy density sinh(2 pi a) / (cosh(2 pi a) - cos(2 pi r)); with
        # L = expm1(2 pi a) it is L (L + 2) / (L^2 + 4 (L + 1) sin^2(pi r)), divided by L
        # or L^2 so that no coefficient overflows
        lift = math.expm1(2.0 * math.pi * width) if width < 100.0 else math.inf
        if lift * eps > 1.0:  # the same cut as the value: the limit slope 1
            return r * 0.0 + 1.0
        sin_half = be.xp.sin(math.pi * r)
        if lift < 1.0:
            coefficient = 4.0 * (1.0 + lift) / lift
            return (lift + 2.0) / (lift + coefficient * (sin_half * sin_half))
        coefficient = 4.0 * (1.0 / lift + 1.0 / (lift * lift))
        return (1.0 + 2.0 / lift) / (1.0 + coefficient * (sin_half * sin_half))


def _rational_score(
    be: Backend, u: Array, order: int, slope: float, curvature: float, offset: float
) -> Array:
    """The scores of the heavy-tailed kernels, ``k'/k = -slope u / (1 + u^2)`` and
    ``k''/k = (curvature u^2 - offset) / (1 + u^2)^2``.

    For ``|u| > 1`` the same in ``a = 1/u``: ``u^2`` overflows long before ``k`` does
    (float32 ``u = 3e38``, and ``slope * u`` itself at the bfloat16 max), by a double
    where so that neither branch puts NaN into a derivative.
    """
    if order == 0:
        return u * 0.0 + 1.0
    xp = be.xp
    far = xp.abs(u) > 1.0
    near_u = xp.where(far, be.const(0.0, u), u)
    a = 1.0 / xp.where(far, u, be.const(1.0, u))
    q, q_a = 1.0 + near_u * near_u, 1.0 + a * a
    if order == 1:
        return xp.where(far, -slope * a / q_a, -slope * near_u / q)
    a2 = a * a
    return xp.where(
        far,
        (curvature * a2 - offset * a2 * a2) / (q_a * q_a),
        (curvature * near_u * near_u - offset) / (q * q),
    )


def cauchy_g(be: Backend, s: Array) -> Array:
    """``|s| arctan(1/|s|)`` for ``s <= 0``; tends to 1 as ``s -> -inf`` without ``inf * 0``."""
    xp = be.xp
    far = s < -1.0
    near_s = xp.where(far, be.const(-1.0, s), s)
    near = -near_s * xp.atan2(be.const(1.0, s), -near_s)
    v = -1.0 / xp.where(far, s, be.const(-2.0, s))  # in (0, 1)
    tiny = v < 1e-4
    v_safe = xp.where(tiny, be.const(0.5, s), v)
    far_value = xp.where(tiny, 1.0 - v * v / 3.0, xp.atan(v_safe) / v_safe)
    return xp.where(far, far_value, near)


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


def _compact_steps(width: float) -> int:
    """``N`` of a compact kernel's direct staircase sum: every step within ``w`` of
    ``m + r`` (``|r| <= 1/2``) is at ``m - N .. m + N``, edges included (a step exactly
    ``w`` away contributes half the density's edge value to the slope)."""
    return math.floor(width + 0.5)


class PolynomialKernel(Kernel):
    r"""Compact kernel :math:`k(u) = c_n (1 - u^2)^n` on :math:`[-1, 1]`.

    ``n = 0`` uniform, 1 Epanechnikov, 2 biweight, 3 triweight. Their CDFs are the
    smoothstep family; every quantity is an exact polynomial, built with fractions.
    """

    support = 1.0
    density_kinks = (-1.0, 1.0)

    def __init__(self, name: str, power: int) -> None:
        self.name = name
        self.power = power
        one_minus_u2 = poly.power([Fraction(1), Fraction(0), Fraction(-1)], power)
        norm = self._integral(one_minus_u2)
        self.density = [c / norm for c in one_minus_u2]
        self.mean_abs = float(2 * self._integral_half([Fraction(0)] + self.density))
        self.second_moment = float(self._integral([Fraction(0), Fraction(0)] + self.density))
        self.smoothness = f"C^{power}"
        # Q(a) = k(a - 1) with a = u + 1; then for v = s + 1 in [0, 1]:
        # P_j(v) = int_0^v (v - a)^j Q(a) da = sum_i q_i i! j! / (i + j + 1)! v^(i+j+1)
        shifted = self._shift(self.density)
        self._tail_coefficients = []
        for j in range(3):
            coefficients = [0.0] * (len(shifted) + j + 1)
            for i, q in enumerate(shifted):
                beta = Fraction(math.factorial(i) * math.factorial(j), math.factorial(i + j + 1))
                coefficients[i + j + 1] = float(q * beta)
            self._tail_coefficients.append(tuple(coefficients))
        # Bernoulli form of the staircase: k^(j)(1) for j = 0..2n
        self._boundary_derivatives = []
        d = list(self.density)
        for j in range(2 * power + 1):
            self._boundary_derivatives.append((j, float(poly.value(d, Fraction(1)))))
            d = poly.derivative(d)
        # the numerical engine: k^(n) as float polynomials; k^(n-1) must vanish at the
        # edges below the top order (no delta' terms), and the score k^(n)/k ~ (1-u)^(p-n)
        # is square-integrable against k ~ (1-u)^p when p >= 2n (or k^(n) = 0 inside)
        self._derivative_coefficients = []
        d = list(self.density)
        for _ in range(3):
            self._derivative_coefficients.append(tuple(float(c) for c in d) or (0.0,))
            d = poly.derivative(d)
        self.max_derivative_order = min(2, power + 1)
        self.max_score_order = 1 if power == 0 else min(2, power // 2)
        self._bernoulli = {
            n: tuple(float(c / math.factorial(n)) for c in poly.bernoulli_polynomial(n))
            for n in range(1, 2 * power + 3)
        }

    @staticmethod
    def _integral(p: poly.Poly) -> Fraction:
        return sum((c * (1 - (-1) ** (k + 1)) / (k + 1) for k, c in enumerate(p)), Fraction(0))

    @staticmethod
    def _integral_half(p: poly.Poly) -> Fraction:
        return sum((c / (k + 1) for k, c in enumerate(p)), Fraction(0))

    @staticmethod
    def _shift(p: poly.Poly) -> poly.Poly:
        """Coefficients of ``p(a - 1)`` in powers of ``a``."""
        out: poly.Poly = [Fraction(0)] * len(p)
        for k, c in enumerate(p):
            for i in range(k + 1):
                out[i] += c * math.comb(k, i) * (-1) ** (k - i)
        return out

    def _pdf(self, be: Backend, u: Array) -> Array:
        xp = be.xp
        inside = xp.maximum(1.0 - u * u, be.const(0.0, u))
        # (1 - u^2)^0 would be 1 outside the support too, hence the explicit window,
        # tested as "not outside" so that NaN stays NaN (+ 0 u: NaN^0 is 1)
        value = float(self.density[0]) * inside**self.power + 0.0 * u
        # at the support's edge the mean of the one-sided limits (the uniform kernel's
        # c / 2; 0 for the others): where two edges meet, as in a staircase at widths
        # 0.5, 1, 1.5, the derivative of a smoothing that is exactly linear there is
        # then its slope (it was 0 or a fraction of it: dead gradients at integers)
        magnitude = xp.abs(u)
        value = xp.where(magnitude == 1.0, 0.5 * value, value)
        return xp.where(magnitude > 1.0, be.const(0.0, u), value)

    def _tail(self, be: Backend, s: Array, degree: int) -> Array:
        # where (not maximum, whose gradient splits ties) so that at the support's edge
        # the derivative is the density's value there, 0 with the open support |u| < 1
        v = s + 1.0
        v = be.xp.where(v <= 0.0, be.const(0.0, s), v)  # NaN stays NaN
        return poly.horner(self._tail_coefficients[degree], v)

    def _char_fn_np(self, omega: np.ndarray) -> np.ndarray:
        import scipy.special as sc

        n = self.power
        double_factorial = float(math.prod(range(1, 2 * n + 2, 2)))
        safe = np.where(omega < 1e-3, 1.0, omega)
        exact = double_factorial * sc.spherical_jn(n, safe) / safe**n
        series = 1.0 - omega * omega / (2.0 * (2 * n + 3))
        return np.where(omega < 1e-3, series, exact)

    def _sample_np(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return 2.0 * rng.beta(self.power + 1, self.power + 1, size=shape) - 1.0

    def _density_derivative(self, be: Backend, u: Array, order: int) -> Array:
        xp = be.xp
        value = poly.horner(self._derivative_coefficients[order], u) + 0.0 * u  # constants too
        return xp.where(xp.abs(u) >= 1.0, be.const(0.0, u), value)  # NaN stays NaN

    def _derivative_atoms(self, order: int) -> tuple[tuple[float, float], ...]:
        # k^(n-1) jumps from 0 up to k^(n-1)(-1) at u = -1 and down from k^(n-1)(1) at 1
        if not 1 <= order <= self.max_derivative_order:
            return ()
        edge = self._boundary_derivatives[order - 1][1]
        if edge == 0.0:
            return ()
        return ((-1.0, (-1.0) ** (order - 1) * edge), (1.0, -edge))

    def _staircase_direct_terms(self, width: float, eps: float) -> int | None:
        return _compact_steps(width) if width <= 1.5 else None

    def _floor_offset(self, be: Backend, r: Array, width: float, eps: float) -> Array:
        if width <= 1.5:
            # only the steps at m - 1, m, m + 1 can be within the support
            return self._floor_offset_direct(be, r, width, _compact_steps(width))
        # Bernoulli form: frac_w = 1/2 - sum_j w^-(j+1) [F_{j+2}(r - w u) k^(j)(u)]_{u=-1}^{1}
        # with F_n = B_n({.})/n! and k^(j)(-1) = (-1)^j k^(j)(1).
        return r - (0.5 - self._bernoulli_sum(be, r, width, 2))

    def _floor_slope(self, be: Backend, r: Array, width: float, eps: float) -> Array:
        if width <= 1.5:
            return self._floor_slope_direct(be, r, width, _compact_steps(width))
        # d/dr of the Bernoulli form, with F_n' = F_{n-1} (F_1 = {y} - 1/2 for uniform)
        return 1.0 + self._bernoulli_sum(be, r, width, 1)

    def _bernoulli_sum(self, be: Backend, r: Array, width: float, shift: int) -> Array:
        """``sum_j w^-(j+1) k^(j)(1) [F_{j+shift}({r - w}) - (-1)^j F_{j+shift}({r + w})]``:
        ``1/2 - frac_w`` for ``shift`` 2, the slope of ``frac_w`` negated for 1."""
        xp = be.xp
        below, above = r - width, r + width
        frac_below = below - xp.floor(below)
        frac_above = above - xp.floor(above)
        total = 0.0 * r
        for j, k_j in self._boundary_derivatives:
            if k_j == 0.0:
                continue
            coefficients = self._bernoulli[j + shift]
            bracket = poly.horner(coefficients, frac_below) - (-1.0) ** j * poly.horner(
                coefficients, frac_above
            )
            # w^-(j+1) underflows (not 1 / w^(j+1), which overflows past w = 1e154)
            scale = k_j / width ** (j + 1) if (j + 1) * math.log(width) < 700.0 else 0.0
            total = total + scale * bracket
        return total


# -- the square-root kernel -------------------------------------------------------------
# Its staircase steps decay like w^2 r / n^3: the nearest steps are summed directly and
# the rest, sum_{n > N} [K(-(n - r)/w) - K(-(n + r)/w)], is an odd power series in r
# whose coefficients come from K(-a) = sum_k c_k a^-2k and Hurwitz zeta values.
_SQRT_SERIES_DEGREE = 121
"""Highest odd power of ``r`` in the far steps' series (terms fall like (2N + 2)^-j)."""
_SQRT_SERIES_RATIO = 0.5
"""The far steps are expanded in ``(w / (n -+ r))^2``, at most ``(w / (N + 1/2))^2``: the
nearest ``N >= 2w - 1/2`` steps are summed directly, so that the series converges like 4^-k."""
_SQRT_MAX_NEAREST = 12
# Relative costs per element: one direct step (a square root and a division), the
# centre step (both branches of the CDF), one Horner term of the series, one Fourier term.
# Measured on 1e6 float64 elements, a sine term costs about two steps with NumPy and a
# tenth of one with eager torch on the CPU; this middle ground switches to the Fourier
# series near w = 0.75 (it then needs at most 8 terms).
_SQRT_STEP_COST = 8.0
_SQRT_CENTRE_COST = 16.0
_SQRT_HORNER_COST = 1.0
_SQRT_SINE_COST = 8.0


def _sqrt_parts(be: Backend, a: Array) -> tuple[Array, Array, Array, Array, Array]:
    """``(far, a_near, q, v, p)`` for ``a >= 0``: ``q = sqrt(1 + a^2)`` where ``a <= 1``,
    ``v = 1/a`` and ``p = sqrt(1 + v^2)`` beyond (so ``q = a p``).

    Each branch sees a harmless stand-in for the other's values (the "double where"),
    so that no ``a^2`` overflows and no ``inf * 0`` reaches a gradient, ``a = inf``
    included.
    """
    xp = be.xp
    far = a > 1.0
    a_near = xp.where(far, be.const(0.0, a), a)
    q = xp.sqrt(1.0 + a_near * a_near)
    v = 1.0 / xp.where(far, a, be.const(2.0, a))
    p = xp.sqrt(1.0 + v * v)
    return far, a_near, q, v, p


def _sqrt_far_cdf(be: Backend, v: Array) -> Array:
    """``K(-1/v) = v^2 / (2 p (1 + p))`` with ``p = sqrt(1 + v^2)``, for ``0 <= v < 1e150``."""
    p = be.xp.sqrt(1.0 + v * v)
    return 0.5 * v * v / (p * (1.0 + p))


def _sqrt_far_pdf(be: Backend, v: Array) -> Array:
    """``k(1/v) = (v / p)^3 / 2`` with ``p = sqrt(1 + v^2)``, for ``0 <= v < 1e150``."""
    ratio = v / be.xp.sqrt(1.0 + v * v)
    return 0.5 * ratio * ratio * ratio


@memoize
def _sqrt_series(width: float, nearest: int, eps: float) -> tuple[float, ...] | None:
    """Coefficients ``(a_1, a_3, ...)`` of ``sum_{n > N} [K((r - n)/w) - K(-(r + n)/w)] =
    sum_j a_j r^j`` (odd ``j``) for ``N = nearest``, truncated where the rest, and the rest
    of its derivative, is below ``eps / 4`` on ``|r| <= 1/2``; ``None`` if it is not.

    With ``K(-a) = (1 - (1 + a^-2)^(-1/2)) / 2 = sum_k c_k a^-2k`` (``a > 1``) and
    ``(n -+ r)^-p`` expanded in ``r``: ``a_j = 2 sum_k c_k w^2k C(2k + j - 1, j)
    zeta(2k + j, N + 1)``. At ``|r| = 1/2`` the double series converges like
    ``(w / (N + 1/2))^2k``; it is summed until that is below ``1e-30``.
    """
    import scipy.special as sc

    ratio = width / (nearest + 0.5)
    if ratio > _SQRT_SERIES_RATIO:
        return None
    k_max = max(1, math.ceil(math.log(1e-30) / (2.0 * math.log(ratio))))
    c = [0.25]  # c_k = -binom(-1/2, k) / 2
    for i in range(1, k_max):
        c.append(-c[-1] * (2 * i + 1) / (2 * i + 2))
    k = np.arange(1, k_max + 1, dtype=np.float64)[:, None]
    j = np.arange(1, _SQRT_SERIES_DEGREE + 1, 2, dtype=np.float64)[None, :]
    with np.errstate(all="ignore"):  # w^2k and zeta underflow harmlessly
        terms = (
            2.0
            * np.asarray(c)[:, None]
            * np.power(width, 2.0 * k)
            * sc.comb(2.0 * k + j - 1.0, j)
            * sc.zeta(2.0 * k + j, nearest + 1.0)
        )
    coefficients = terms.sum(axis=0)
    if not np.all(np.isfinite(coefficients)):  # pragma: no cover - excluded by the ratio
        return None
    degrees = j[0]
    value_terms = np.abs(coefficients) * 0.5**degrees
    slope_terms = np.abs(coefficients) * degrees * 0.5 ** (degrees - 1.0)
    if max(value_terms[-1], slope_terms[-1]) > 1e-6 * eps:
        return None
    value_rest = np.cumsum(value_terms[::-1])[::-1]  # the part from each degree on
    slope_rest = np.cumsum(slope_terms[::-1])[::-1]
    fine = np.nonzero((value_rest <= 0.25 * eps) & (slope_rest <= 0.25 * eps))[0]
    count = max(1, int(fine[0])) if fine.size else len(degrees)
    return tuple(float(a) for a in coefficients[:count])


@memoize
def _sqrt_staircase_form(kernel: Kernel, width: float, eps: float) -> tuple[Any, ...]:
    """``("fourier", K)`` or ``("series", N, coefficients)``: the cheaper exact form."""
    fourier = _staircase_terms(kernel, width, eps)[1]
    best: tuple[Any, ...] | None = None if fourier is None else ("fourier", fourier)
    best_cost = math.inf if fourier is None else _SQRT_SINE_COST * fourier
    for nearest in range(_SQRT_MAX_NEAREST + 1):
        if _SQRT_CENTRE_COST + 2 * nearest * _SQRT_STEP_COST >= best_cost:
            break
        coefficients = _sqrt_series(width, nearest, eps)
        if coefficients is None:
            continue
        cost = (
            _SQRT_CENTRE_COST
            + 2 * nearest * _SQRT_STEP_COST
            + len(coefficients) * _SQRT_HORNER_COST
        )
        if cost < best_cost:
            best, best_cost = ("series", nearest, coefficients), cost
    if best is None:  # pragma: no cover - the series covers w < 6, Fourier w > 0.1
        raise ValueError(f"no convergent staircase form for the sqrt kernel at width {width}")
    return best


class Sqrt(Kernel):
    r"""Square-root kernel :math:`k(u) = \tfrac12 (1 + u^2)^{-3/2}`, Student's t with 2
    degrees of freedom over :math:`\sqrt 2`; ``K(t) = (1 + t / \sqrt{1 + t^2}) / 2``.

    The square-root smoothing of allenwind (n.d.): ReLU becomes :math:`(x + \sqrt{x^2 + w^2}) / 2`
    (squareplus with ``b = w^2``), abs :math:`\sqrt{x^2 + w^2}` and ``max(a, b)``
    :math:`(a + b + \sqrt{(a - b)^2 + w^2}) / 2`. ``E|U| = 1`` but ``E[U^2]`` is
    infinite: truncated moments of degree 2 (quadratic pieces) diverge.
    """

    name = "sqrt"
    mean_abs = 1.0
    second_moment = math.inf
    smoothness = "C^inf"
    max_ramp_degree = 1

    def _pdf(self, be: Backend, u: Array) -> Array:
        # g^(3/2) / 2 with g = 1 / (1 + u^2); beyond |u| = 1 with g = v^2 / (1 + v^2) in
        # v = 1/u and sqrt(g) as |v| / sqrt(1 + v^2) (sqrt at an underflowed g = 0 would
        # have an infinite derivative)
        xp = be.xp
        far = xp.abs(u) > 1.0
        u_near = xp.where(far, be.const(0.0, u), u)
        v = xp.abs(1.0 / xp.where(far, u, be.const(2.0, u)))
        near = 1.0 / (1.0 + u_near * u_near)  # in [1/2, 1]
        g = xp.where(far, v * v / (1.0 + v * v), near)
        return 0.5 * g * xp.where(far, v / xp.sqrt(1.0 + v * v), xp.sqrt(near))

    def _tail(self, be: Backend, s: Array, degree: int) -> Array:
        if degree >= 2:
            raise ValueError(
                "the sqrt kernel has no second moment: E[(t - U)_+^j] is infinite for j >= 2"
            )
        # with a = -s, q = sqrt(1 + a^2) and, beyond a = 1, v = 1/a, p = sqrt(1 + v^2):
        # K(s) = 1 / (2 q (q + a)) = v^2 / (2 p (1 + p)),
        # E(s - U)_+ = (s + q) / 2 = 1 / (2 (q + a)) = v / (2 (1 + p))
        far, a, q, v, p = _sqrt_parts(be, -s)
        if degree == 0:
            near, beyond = 0.5 / (q * (q + a)), 0.5 * v * v / (p * (1.0 + p))
        else:
            near, beyond = 0.5 / (q + a), 0.5 * v / (1.0 + p)
        return be.xp.where(far, beyond, near)

    def _gate(self, be: Backend, x: Array, width: float) -> Array:
        # x K(x/w) = (x)_+ - w h(a), a = |x|/w, h(a) = a K(-a): |x| / (2 q (q + a)) for
        # a <= 1 (in |x|, not w a, so that a subnormal a flushed to zero costs nothing) and
        # w v / (2 p (1 + p)) -> w / (4a) beyond, so the far left tail -w^2/(4|x|) keeps its
        # digits (x K(x/w) would underflow K first) and both limits come out exact
        xp = be.xp
        s, right = _sign_consistent_reflection(be, scaled(be, x, 0.0, width))
        far, a, q, v, p = _sqrt_parts(be, -s)
        magnitude = xp.where(far, be.const(0.0, x), xp.where(right, x, -x))
        near = magnitude * (0.5 / (q * (q + a)))
        beyond = width * (0.5 * v / (p * (1.0 + p)))
        return xp.where(right, x, be.const(0.0, x)) - xp.where(far, beyond, near)

    def _char_fn_np(self, omega: np.ndarray) -> np.ndarray:
        import scipy.special as sc

        # |omega| K_1(|omega|) = 1 + O(omega^2 log omega): 1 below 1e-150; e^-omega
        # underflows beyond 1400
        tiny, huge = omega < 1e-150, omega > 1400.0
        safe = np.where(tiny | huge, 1.0, omega)
        value = safe * sc.k1e(safe) * np.exp(-safe)
        return np.where(tiny, 1.0, np.where(huge, 0.0, value))

    def _sample_np(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return rng.standard_t(2, size=shape) / math.sqrt(2.0)

    def _density_derivative(self, be: Backend, u: Array, order: int) -> Array:
        return self._score(be, u, order) * self._pdf(be, u)

    def _score(self, be: Backend, u: Array, order: int) -> Array:
        # k'/k = -3u/(1 + u^2), k''/k = (12u^2 - 3)/(1 + u^2)^2
        return _rational_score(be, u, order, 3.0, 12.0, 3.0)

    # The heavy tails are integrated in the angle: u = tan(t), k(u) du = cos(t) dt / 2
    # (the mass left beyond the last panel is 1e-24).
    quadrature_in_angle = True
    tail_power = 3.0

    def _panel_weight(self, be: Backend, t: Array, order: int) -> Array:
        # k^(n)(tan t) sec^2 t: cos/2, -3 sin cos^2 / 2, -3 cos^3 (cos^2 - 4 sin^2) / 2
        cos = be.xp.cos(t)
        if order == 0:
            return 0.5 * cos
        sin = be.xp.sin(t)
        cos2 = cos * cos
        if order == 1:
            return -1.5 * sin * cos2
        return -1.5 * cos2 * cos * (cos2 - 4.0 * sin * sin)

    def _quantile(self, be: Backend, p: Array) -> Array:
        # K(u) = p: u / sqrt(1 + u^2) = 2p - 1
        return (2.0 * p - 1.0) / (2.0 * be.xp.sqrt(p * (1.0 - p)))

    # -- staircases ---------------------------------------------------------------------
    def _staircase_direct_terms(self, width: float, eps: float) -> int | None:
        return None  # its own staircase forms (see _floor_offset)

    def _floor_offset(self, be: Backend, r: Array, width: float, eps: float) -> Array:
        form = _sqrt_staircase_form(self, width, eps)
        if form[0] == "fourier":
            return self._floor_offset_fourier(be, r, width, form[1])
        _, nearest, coefficients = form
        # -K(-r/w) + sum_{n <= N} [K(-(n - r)/w) - K(-(n + r)/w)] + the far steps' series
        total = -self._cdf(be, -r * (1.0 / width))
        for n in range(1, nearest + 1):
            below = _sqrt_far_cdf(be, width / (n - r))
            above = _sqrt_far_cdf(be, width / (n + r))
            total = total + (below - above)
        return total + r * poly.horner(coefficients, r * r)

    def _floor_slope(self, be: Backend, r: Array, width: float, eps: float) -> Array:
        form = _sqrt_staircase_form(self, width, eps)
        if form[0] == "fourier":
            return self._floor_slope_fourier(be, r, width, form[1])
        _, nearest, coefficients = form
        inv_w = 1.0 / width
        total = self._pdf(be, -r * inv_w)
        for n in range(1, nearest + 1):
            total = total + (
                _sqrt_far_pdf(be, width / (n - r)) + _sqrt_far_pdf(be, width / (n + r))
            )
        derivative = [(2 * i + 1) * a for i, a in enumerate(coefficients)]
        return total * inv_w + poly.horner(derivative, r * r)


class Gumbel(Kernel):
    r"""The law of :math:`U = -G` for a standard Gumbel :math:`G`:
    :math:`k(u) = e^{u - e^u}`, :math:`K(u) = 1 - e^{-e^u}`, :math:`K^{-1}(p) =
    \log(-\log(1 - p))`, score :math:`k'/k = 1 - e^u`.

    Asymmetric, so its sign matters: the library smooths by ``x - wU``, and with
    ``U = -G`` that is ``x + wG``, the perturbation of the Gumbel-max trick:
    ``E[onehot(argmax(x + wG))] = softmax(x / w)``. ``E[U] = -gamma`` (Euler's
    constant), so ``f(y) = y`` smooths to ``x + gamma w``, not ``x``.

    Only :func:`mollifier.smooth`'s numerical methods take it (quadrature, Monte Carlo,
    the vector form ``event_ndim=1``); the closed forms, bounds and ``tol=`` widths
    assume a symmetric kernel and refuse it (:func:`get_kernel`).
    """

    name = "gumbel"
    symmetric = False
    mean_abs = 1.0159835336925709  # E|G|, by quadrature
    second_moment = math.pi**2 / 6.0 + 0.5772156649015329**2
    smoothness = "C^inf"

    def _pdf(self, be: Backend, u: Array) -> Array:
        # e^{u - e^u}: e^u overflows to inf beyond u = 709, where the density is 0 anyway
        return be.xp.exp(u - be.xp.exp(u))

    def _cdf(self, be: Backend, t: Array) -> Array:
        return -be.xp.expm1(-be.xp.exp(t))

    def _tail(self, be: Backend, s: Array, degree: int) -> Array:
        raise ValueError(_ASYMMETRIC)

    def _char_fn_np(self, omega: np.ndarray) -> np.ndarray:
        raise ValueError(_ASYMMETRIC)

    def _sample_np(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return -rng.gumbel(size=shape)

    def _check_piecewise(self, degree: int, slopes: tuple[float, float]) -> None:
        raise ValueError(_ASYMMETRIC)

    def _density_derivative(self, be: Backend, u: Array, order: int) -> Array:
        return self._score(be, u, order) * self._pdf(be, u)

    def _score(self, be: Backend, u: Array, order: int) -> Array:
        # k' = (1 - e^u) k, k'' = ((1 - e^u)^2 - e^u) k
        if order == 0:
            return u * 0.0 + 1.0
        e = be.xp.exp(u)
        return 1.0 - e if order == 1 else (1.0 - e) * (1.0 - e) - e

    def _quantile(self, be: Backend, p: Array) -> Array:
        return be.xp.log(-be.xp.log1p(-p))

    panel_scale = 4.0

    def _panel_edges(self, panels: int) -> np.ndarray:
        # P(U < -42) = 6e-19 (the exponential tail), P(U > 4) = 2e-24 (double exponential)
        low, high = math.asinh(-42.0 / self.panel_scale), math.asinh(4.0 / self.panel_scale)
        return self.panel_scale * np.sinh(np.linspace(low, high, panels + 1))


_ASYMMETRIC = (
    "the gumbel kernel is asymmetric: the closed forms, error bounds and tol= widths "
    "assume a symmetric kernel (k(-u) = k(u)); use it with mollifier.smooth(f, "
    "kernel='gumbel', method='quadrature' or 'monte_carlo'), e.g. the perturbed argmax "
    "with event_ndim=1"
)


kernels: dict[str, Kernel] = {
    k.name: k
    for k in (
        Gaussian(),
        Logistic(),
        Cauchy(),
        Laplace(),
        Sqrt(),
        PolynomialKernel("uniform", 0),
        PolynomialKernel("epanechnikov", 1),
        PolynomialKernel("biweight", 2),
        PolynomialKernel("triweight", 3),
    )
}
"""Registry of the built-in (symmetric) smoothing kernels by name."""

numerical_kernels: dict[str, Kernel] = {k.name: k for k in (Gumbel(),)}
"""Kernels that only :func:`mollifier.smooth`'s numerical methods take (asymmetric)."""


def get_kernel(kernel: str | Kernel, *, numerical: bool = False) -> Kernel:
    """Look a kernel up by name, or pass a :class:`Kernel` through.

    ``numerical=True`` also admits the asymmetric kernels (``"gumbel"``), which only the
    numerical methods of :func:`mollifier.smooth` can use (see :attr:`Kernel.symmetric`).

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid ones), and for an asymmetric
        kernel unless ``numerical``.
    TypeError
        For anything that is neither a name nor a kernel.
    """
    if isinstance(kernel, str):
        name = kernel.lower()
        found = kernels.get(name) or numerical_kernels.get(name)
        if found is None:
            raise ValueError(
                f"kernel must be one of {sorted(kernels)} (or {sorted(numerical_kernels)} "
                f"for mollifier.smooth's numerical methods) or a Kernel; got {kernel!r}"
            )
        kernel = found
    elif not isinstance(kernel, Kernel):
        raise TypeError(f"kernel must be a name or a Kernel; got {type(kernel).__name__}")
    if not numerical and not kernel.symmetric:
        raise ValueError(
            f"kernel={kernel.name!r} is asymmetric: the closed forms, error bounds and tol= "
            "widths assume a symmetric kernel; only mollifier.smooth's numerical methods "
            "(method='quadrature' or 'monte_carlo', event_ndim=1) take it"
        )
    return kernel
