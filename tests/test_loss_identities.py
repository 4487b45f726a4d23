"""Loss functions that are smoothed absolute values (each checked against its own
textbook formula, written here independently)."""

from __future__ import annotations

import numpy as np
import pytest

import mollifier as mol

X = np.concatenate([np.linspace(-6.0, 6.0, 1201), [0.0, 1e-300, 1e8, -1e8]])


@pytest.mark.parametrize("delta", [0.1, 1.0, 3.0])
def test_huber_is_the_uniform_abs(delta):
    """Huber_d(x) = x^2/2 for |x| <= d, d (|x| - d/2) beyond = d abs_d(x) - d^2/2."""
    huber = np.where(np.abs(X) <= delta, X * X / 2, delta * (np.abs(X) - delta / 2))
    got = delta * mol.abs(X, width=delta, kernel="uniform") - delta**2 / 2
    np.testing.assert_allclose(got, huber, rtol=1e-13, atol=1e-14 * delta**2)


@pytest.mark.parametrize("delta", [0.1, 1.0, 3.0])
def test_pseudo_huber_is_the_sqrt_abs(delta):
    """Pseudo-Huber d^2 (sqrt(1 + (x/d)^2) - 1) = d abs_d(x) - d^2 with the sqrt kernel."""
    pseudo = delta**2 * (np.sqrt(1 + (X / delta) ** 2) - 1)
    got = delta * mol.abs(X, width=delta, kernel="sqrt") - delta**2
    np.testing.assert_allclose(got, pseudo, rtol=1e-12, atol=1e-14 * delta**2)


def test_log_cosh_is_the_logistic_abs_at_width_one_half():
    """log cosh x = abs_{1/2}(x) - log 2 (logistic kernel): abs_w = 2w log(2 cosh(x/2w))."""
    log_cosh = np.logaddexp(X, -X) - np.log(2.0)
    got = mol.abs(X, width=0.5, kernel="logistic") - np.log(2.0)
    np.testing.assert_allclose(got, log_cosh, rtol=1e-13, atol=1e-15)


def test_squareplus_is_the_sqrt_relu():
    """jax.nn.squareplus(x, b) = (x + sqrt(x^2 + b)) / 2 = relu_w(x) with b = w^2."""
    import jax

    moderate = X[np.abs(X) < 1e3]
    for b in (1e-4, 1.0, 4.0):
        width = np.sqrt(b)
        # the same function written without cancellation for x < 0
        root = np.sqrt(X * X + b)
        stable = np.where(X >= 0, (X + root) / 2, b / (2 * (root + np.abs(X))))
        np.testing.assert_allclose(mol.relu(X, width=width, kernel="sqrt"), stable, rtol=1e-14)
        np.testing.assert_allclose(  # jax computes in float32 unless x64 is on
            mol.relu(moderate, width=width, kernel="sqrt"),
            np.asarray(jax.nn.squareplus(moderate, b)),
            rtol=1e-6,
            atol=1e-6,
        )
