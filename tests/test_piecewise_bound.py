"""A Piecewise's error bound comes from its own jumps, kinks and curvature, and it is
the same object every named piecewise op's bound comes from."""

from __future__ import annotations

import math

import numpy as np
import pytest

import mollifier as mol
from mollifier._catalogue import CATALOGUE

KERNELS = [k for k in sorted(mol.kernels) if math.isfinite(mol.kernels[k].second_moment)]


@pytest.mark.parametrize("kernel", sorted(mol.kernels))
def test_user_piecewise_gets_the_named_ops_bound(kernel):
    """Previously a user ReLU got twice the bound of mol.relu (L w E|U| instead of w E|U|/2)."""
    shapes = {
        "relu": mol.Piecewise([0], [[0], [0, 1]]),
        "abs": mol.Piecewise([0], [[0, -1], [0, 1]]),
        "step": mol.Piecewise([0], [[0], [1]]),
        "sign": mol.Piecewise([0], [[-1], [1]]),
        "clip": mol.Piecewise([-1, 2], [[-1], [0, 1], [2]]),
        "hinge": mol.Piecewise([1], [[1, -1], [0]]),
    }
    k = mol.kernels[kernel]
    for name, shape in shapes.items():
        if not CATALOGUE[name].admits(k):
            continue
        for width in (1e-3, 0.4):
            want = mol.error_bound(name, kernel=kernel, width=width)
            got = mol.error_bound(shape, kernel=kernel, width=width)
            assert got == want, (name, kernel, got, want)
    if CATALOGUE["relu"].admits(k):
        assert mol.width_for(shapes["relu"], kernel=kernel, tol=1e-3) == mol.width_for(
            "relu", kernel=kernel, tol=1e-3
        )


RANDOM_SHAPES = [
    mol.Piecewise([-1.0, 0.5, 2.0], [[0.3], [1.0, 2.0], [0.0, -1.0, 0.5], [4.0]]),
    mol.Piecewise([0.0], [[0.0, 0.0, 1.0], [1.0, -3.0]]),  # a quadratic outer piece
    mol.Piecewise([-2.0, -1.0, 1.0], [[0.0, 1.0], [-1.0], [0.0, 0.0, 1.0], [2.0, 0.5]]),
    mol.Piecewise([], [[1.0, 2.0, -0.5]]),  # one quadratic: the error is exactly a2 w^2 E[U^2]
]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("index", range(len(RANDOM_SHAPES)))
def test_measured_sup_error_is_within_the_bound(kernel, index):
    f = RANDOM_SHAPES[index]
    x = np.concatenate([np.linspace(-6.0, 6.0, 24001), f.breakpoints])
    for width in (0.01, 0.3, 1.5):
        g = mol.smooth(f, kernel=kernel, width=width)
        error = float(np.max(np.abs(g(x) - f(x))))
        bound = mol.error_bound(f, kernel=kernel, width=width)
        assert error <= bound * (1 + 1e-9) + 1e-12, (kernel, width, error, bound)
    if index == 3:  # sharp: a single quadratic is shifted by exactly a2 w^2 E[U^2]
        bound = mol.error_bound(f, kernel=kernel, width=0.3)
        assert bound == pytest.approx(0.5 * 0.09 * mol.kernels[kernel].second_moment)


@pytest.mark.parametrize("kernel", KERNELS)
def test_tol_is_refused_for_a_shape_with_jumps(kernel):
    f = RANDOM_SHAPES[2]  # jumps at -2 and -1
    assert not f.is_continuous
    with pytest.raises(ValueError, match="jumps"):
        mol.width_for(f, kernel=kernel, tol=1e-3)


def test_continuous_curved_shape_width_for_solves_the_quadratic():
    f = mol.Piecewise([0.0], [[0.0], [0.0, 1.0, 1.0]])  # x + x^2 for x >= 0
    for kernel in KERNELS:
        width = mol.width_for(f, kernel=kernel, tol=1e-2)
        assert mol.error_bound(f, kernel=kernel, width=width) == pytest.approx(1e-2, rel=1e-12)
        g = mol.smooth(f, kernel=kernel, tol=1e-2)
        x = np.linspace(-3, 3, 6001)
        assert np.max(np.abs(g(x) - f(x))) <= 1e-2 * (1 + 1e-9)


def test_bad_bound_arguments_raise_naming_them():
    with pytest.raises(TypeError, match="negative_slop"):
        mol.error_bound("relu", width=0.1, negative_slop=0.1)
    with pytest.raises(TypeError, match="no parameters"):
        mol.error_bound(mol.Piecewise([0], [[0], [1]]), width=0.1, step=2.0)
    with pytest.raises(ValueError, match="op must be one of"):
        mol.error_bound("nope", width=0.1)
    assert mol.error_bound("leaky_relu", width=0.1, negative_slope=0.5) == pytest.approx(
        0.5 * mol.error_bound("relu", width=0.1)
    )


def test_kernel_admissibility_is_kernel_data():
    """A user kernel without a mean is refused for growing functions, like Cauchy."""

    class HeavyTailed(type(mol.kernels["cauchy"])):
        name = "heavy"

    with pytest.raises(ValueError, match="heavy.*E\\|U\\| = inf"):
        mol.relu(np.array([1.0]), width=0.1, kernel=HeavyTailed())
    assert np.isfinite(mol.clip(np.array([0.5]), 0.0, 1.0, width=0.1, kernel=HeavyTailed()))
    with pytest.raises(ValueError, match="second moment"):
        mol.smooth(RANDOM_SHAPES[0], kernel=HeavyTailed(), width=0.1)


def test_tol_for_a_function_every_width_smooths_exactly_says_so():
    line = mol.Piecewise([], [[1.0, 2.0]])  # a symmetric kernel leaves a line unchanged
    with pytest.raises(ValueError, match="every width smooths it exactly"):
        mol.width_for(line, tol=1e-3)
    np.testing.assert_allclose(mol.smooth(line, width=5.0)(np.array([0.0, 3.0])), [1.0, 7.0])
    with pytest.raises(ValueError, match="E\\|U\\| = inf"):
        mol.width_for("clip", kernel="cauchy", tol=1e-3)
