"""float64 results against the independent 40-digit mpmath reference."""

import math

import mpmath as mp
import numpy as np
import pytest

import mollifier as mol
from mollifier import _check
from mollifier import _reference as ref

PAIRS = _check.pairs()
# The full grid (four widths from 1e-4 to 1e3, |x| up to 1e6) for the ops whose
# reference is a quadrature; the staircases' step-sum references are slower, so
# they run on the two middle widths of their grid.
FULL = {"relu", "abs", "clip", "sign", "floor", "round"}


@pytest.mark.parametrize(("op", "kernel"), PAIRS, ids=[f"{o}-{k}" for o, k in PAIRS])
def test_matches_reference_and_bound(op, kernel):
    row = _check.check_pair(op, kernel, quick=op not in FULL)
    assert row.max_error <= 1e-12, row
    assert row.passed, row  # also: measured sup error within the bound at every width


@pytest.mark.parametrize("kernel", sorted(mol.kernels))
def test_user_piecewise_with_quadratic_piece(kernel):
    pieces = [[0.5], [1, 1], [1, -0.5, 0.25], [0]]
    f = mol.Piecewise(breakpoints=[-1, 0, 2], pieces=pieces)
    if not math.isfinite(mol.kernels[kernel].second_moment):
        with pytest.raises(ValueError, match="degree <= 1"):
            mol.smooth(f, kernel=kernel, width=0.3)
        return

    def hard(y):
        if y < -1:
            return mp.mpf(1) / 2
        if y < 0:
            return 1 + y
        return 1 - y / 2 + y * y / 4 if y < 2 else mp.mpf(0)

    for width in (1e-3, 0.3, 4.0):
        g = mol.smooth(f, kernel=kernel, width=width)
        xs = [-1e4, -2.0, -1.0, -0.3, 0.0, 1.0, 2.0, 2.5, 50.0]
        got = g(np.array(xs))
        for x, value in zip(xs, got):
            expected = float(ref.convolve(hard, [-1, 0, 2], kernel, width, x))
            assert abs(value - expected) <= 1e-12 * max(1.0, abs(expected)), (width, x)


def test_cauchy_principal_value_piecewise():
    # identity plus a bounded bump: outer slopes equal, so the Cauchy PV exists
    f = mol.Piecewise(breakpoints=[0.0, 1.0], pieces=[[0, 1], [0, 2], [1, 1]])
    g = mol.smooth(f, kernel="cauchy", width=0.5)
    for x in (-30.0, 0.0, 0.5, 3.0):
        bump = ref.convolve(lambda y: min(max(y, 0), 1), [0.0, 1.0], "cauchy", 0.5, x)
        assert abs(g(np.array(x)) - (x + float(bump))) <= 1e-12


@pytest.mark.parametrize("kernel", ["gaussian", "logistic", "laplace", "epanechnikov"])
def test_wide_staircase_tends_to_x_minus_half(kernel):
    x = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(mol.floor(x, kernel=kernel, width=1e3), x - 0.5, atol=1e-12)
