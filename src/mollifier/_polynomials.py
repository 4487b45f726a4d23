"""Exact rational polynomial helpers, evaluated once at import time.

Coefficients are lists in ascending powers. They are built with :class:`fractions.Fraction`
so that the compact kernels' partial moments and the Bernoulli polynomials carry no
rounding before the final conversion to Python floats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

Poly = list[Fraction]


def multiply(a: Poly, b: Poly) -> Poly:
    out = [Fraction(0)] * (len(a) + len(b) - 1)
    for i, ai in enumerate(a):
        for j, bj in enumerate(b):
            out[i + j] += ai * bj
    return out


def power(a: Poly, n: int) -> Poly:
    out: Poly = [Fraction(1)]
    for _ in range(n):
        out = multiply(out, a)
    return out


def derivative(a: Poly) -> Poly:
    return [k * a[k] for k in range(1, len(a))] or [Fraction(0)]


def value(a: Poly, u: Fraction) -> Fraction:
    acc = Fraction(0)
    for coefficient in reversed(a):
        acc = acc * u + coefficient
    return acc


def horner(coefficients: Sequence[float], t: Any) -> Any:
    """Evaluate ``sum(c[k] * t**k)`` by Horner's rule on an array ``t``.

    Trailing zero coefficients are dropped first, so ``t = ±inf`` never meets
    ``0 * inf``. A constant polynomial returns the Python float itself.
    """
    coefficients = list(coefficients)
    while len(coefficients) > 1 and coefficients[-1] == 0:
        coefficients.pop()
    if len(coefficients) == 1:
        return float(coefficients[0])
    acc = t * float(coefficients[-1])
    for coefficient in reversed(coefficients[1:-1]):
        acc = (acc + float(coefficient)) * t if coefficient else acc * t
    return acc + float(coefficients[0]) if coefficients[0] else acc


def bernoulli_numbers(n_max: int) -> list[Fraction]:
    """B_0..B_{n_max} with the convention B_1 = -1/2."""
    numbers = [Fraction(1)]
    for n in range(1, n_max + 1):
        total = sum((math.comb(n + 1, k) * numbers[k] for k in range(n)), Fraction(0))
        numbers.append(-total / (n + 1))
    return numbers


def bernoulli_polynomial(n: int) -> Poly:
    """Coefficients of the Bernoulli polynomial B_n(y), ascending powers of y."""
    numbers = bernoulli_numbers(n)
    return [math.comb(n, k) * numbers[n - k] for k in range(n + 1)]
