"""High-precision reference values computed independently with mpmath.

Nothing here reuses the library's closed forms: piecewise functions are convolved by
adaptive quadrature of ``f(x - w u) k(u)`` split at every breakpoint, and staircases are
summed step by step (up- and down-steps paired, which is the principal value for the
Cauchy kernel), with each kernel's density and CDF written from their textbook
definitions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import mpmath as mp

DIGITS = 40
# Each entry point raises the precision to at least DIGITS but never lowers it: mpmath's
# series acceleration (nsum) works at extra precision and calls back into these.

_COMPACT_POWERS = {"uniform": 0, "epanechnikov": 1, "biweight": 2, "triweight": 3}


def pdf(name: str, u: mp.mpf) -> mp.mpf:
    """Standard density of a kernel, from its definition."""
    if name == "gaussian":
        return mp.exp(-u * u / 2) / mp.sqrt(2 * mp.pi)
    if name == "logistic":
        e = mp.exp(-abs(u))
        return e / (1 + e) ** 2
    if name == "laplace":
        return mp.exp(-abs(u)) / 2
    if name == "cauchy":
        return 1 / (mp.pi * (1 + u * u))
    if name == "sqrt":  # Student t with 2 degrees of freedom, over sqrt(2)
        return 1 / (2 * (1 + u * u) ** mp.mpf(1.5))
    n = _COMPACT_POWERS[name]
    if abs(u) >= 1:
        return mp.mpf(0)
    return (1 - u * u) ** n / _compact_norm(n)


def _compact_norm(n: int) -> mp.mpf:
    # int_{-1}^{1} (1 - u^2)^n du = sqrt(pi) Gamma(n + 1) / Gamma(n + 3/2)
    return mp.sqrt(mp.pi) * mp.gamma(n + 1) / mp.gamma(n + mp.mpf(3) / 2)


def cdf(name: str, t: mp.mpf) -> mp.mpf:
    """Standard CDF of a kernel (at ``DIGITS`` digits)."""
    with mp.workdps(max(DIGITS, mp.mp.dps)):
        return _cdf(name, mp.mpf(t))


def _cdf(name: str, t: mp.mpf) -> mp.mpf:
    if name == "gaussian":
        return mp.ncdf(t)
    if name == "logistic":
        return 1 / (1 + mp.exp(-t))
    if name == "laplace":
        return mp.exp(t) / 2 if t < 0 else 1 - mp.exp(-t) / 2
    if name == "cauchy":
        return mp.mpf(1) / 2 + mp.atan(t) / mp.pi
    if name == "sqrt":
        # 1 + t / sqrt(1 + t^2) cancels to 1/(2 t^2) far left: carry the digits it loses
        with mp.extradps(int(2 * mp.log10(1 + abs(t)))):
            return (1 + t / mp.sqrt(1 + t * t)) / 2
    if t <= -1:
        return mp.mpf(0)
    if t >= 1:
        return mp.mpf(1)
    return mp.quad(lambda u: pdf(name, u), [-1, t])


def convolve(
    f: Callable[[mp.mpf], mp.mpf],
    breakpoints: Sequence[float],
    kernel: str,
    width: float,
    x: float,
) -> mp.mpf:
    """``int f(x - w u) k(u) du`` by quadrature split where the integrand has kinks."""
    with mp.workdps(max(DIGITS, mp.mp.dps)):
        x_, w = mp.mpf(x), mp.mpf(width)
        compact = kernel in _COMPACT_POWERS
        cuts = {(x_ - mp.mpf(c)) / w for c in breakpoints}
        cuts.add(mp.mpf(0))
        lo, hi = (mp.mpf(-1), mp.mpf(1)) if compact else (-mp.inf, mp.inf)
        inner = sorted(c for c in cuts if lo < c < hi)
        if not compact:
            # resolve the body of the kernel and the far tails separately
            inner = sorted(set(inner) | {mp.mpf(-30), mp.mpf(30)})
        points = [lo, *inner, hi]
        return mp.quad(lambda u: f(x_ - w * u) * pdf(kernel, u), points)


def floor(kernel: str, width: float, x: float) -> mp.mpf:
    """Smoothed floor ``sum_n [K((x - n)/w) - theta(-n)]`` summed step by step.

    With ``m = round(x)`` and ``r = x - m``: ``m - K(-r/w) + sum_{n>=1} [K((r - n)/w) -
    K(-(r + n)/w)]`` (each up-step paired with the mirrored down-step).
    """
    with mp.workdps(max(DIGITS, mp.mp.dps)):
        x_ = mp.mpf(x)
        m = mp.nint(x_)
        r, w = x_ - m, mp.mpf(width)

        def term(n: mp.mpf) -> mp.mpf:
            return cdf(kernel, (r - n) / w) - cdf(kernel, -(r + n) / w)

        return m - cdf(kernel, -r / w) + _sum_outward(term, kernel, width)


def floor_slope(kernel: str, width: float, x: float) -> mp.mpf:
    """``d/dx floor_w(x) = sum_n k((x - n)/w)/w``, the kernel wrapped on the circle,
    summed outward from the nearest integer."""
    with mp.workdps(max(DIGITS, mp.mp.dps)):
        x_ = mp.mpf(x)
        r, w = x_ - mp.nint(x_), mp.mpf(width)

        def pair(n: mp.mpf) -> mp.mpf:
            return (pdf(kernel, (r - n) / w) + pdf(kernel, (r + n) / w)) / w

        return pdf(kernel, r / w) / w + _sum_outward(pair, kernel, width)


def _sum_outward(term: Callable[[mp.mpf], mp.mpf], kernel: str, width: float) -> mp.mpf:
    """``sum_{n>=1} term(n)``: term by term until past the kernel's reach and below
    1e-35. The slow tails of the Cauchy and sqrt kernels: mpmath's series acceleration;
    for the sqrt kernel at widths from 10 on, term by term past the reach and then
    Euler-Maclaurin (its steps are smooth in ``n``; Richardson's extrapolation misses by
    1e-5 at ``w = 1000``, and Euler-Maclaurin is 20 times slower at small widths)."""
    if kernel == "cauchy" or (kernel == "sqrt" and width < 10):
        return mp.nsum(term, [1, mp.inf])
    if kernel == "sqrt":
        reach = int(2 * width) + 2
        head = mp.fsum(term(mp.mpf(n)) for n in range(1, reach))
        return head + mp.nsum(term, [reach, mp.inf], method="euler-maclaurin")
    total, n = mp.mpf(0), 1
    while True:
        value = term(mp.mpf(n))
        total += value
        if n > 2 * width + 2 and abs(value) < mp.mpf(10) ** (-DIGITS + 5):
            return total
        n += 1


def gate(kernel: str, width: float, x: float) -> mp.mpf:
    """Product form ``x K(x / w)`` (GELU, swish)."""
    with mp.workdps(max(DIGITS, mp.mp.dps)):
        return mp.mpf(x) * _cdf(kernel, mp.mpf(x) / mp.mpf(width))


def trunc(kernel: str, width: float, x: float) -> mp.mpf:
    """``trunc = floor + theta(-x)`` almost everywhere, so its smoothing adds ``K(-x/w)``."""
    with mp.workdps(max(DIGITS, mp.mp.dps)):
        return floor(kernel, width, x) + _cdf(kernel, -mp.mpf(x) / mp.mpf(width))
