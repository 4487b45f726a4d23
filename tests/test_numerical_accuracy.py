"""The numerical engine's accuracy control against an independent 20-digit reference.

The reference integrates ``f(y) k((x - y)/w)/w`` over ``y`` with mpmath, split at every
jump of ``f`` (located from ``f``'s own definition here, not by the engine) and at the
kernel's kink; densities and their derivatives are written out below, separately from
the library. Checked: the value and the score-function gradient at the default ``tol``
(1e-8 or better, relative to the scale of ``f``), and that the reported error estimate
is at least the actual error in at least 99% of cases.
"""

from __future__ import annotations

import math
import warnings

import mpmath as mp
import numpy as np
import pytest
import torch

import mollifier as mol
from conftest import to_numpy

# kernel density k(u) and k'(u) in mpmath, and the reach beyond which the mass is < 1e-20
DENSITIES = {
    "gaussian": (
        lambda u: mp.exp(-u * u / 2) / mp.sqrt(2 * mp.pi),
        lambda u: -u * mp.exp(-u * u / 2) / mp.sqrt(2 * mp.pi),
        10.0,
    ),
    "logistic": (
        lambda u: 1 / (4 * mp.cosh(u / 2) ** 2),
        lambda u: -mp.tanh(u / 2) / (4 * mp.cosh(u / 2) ** 2),
        48.0,
    ),
    "laplace": (
        lambda u: mp.exp(-abs(u)) / 2,
        lambda u: -mp.sign(u) * mp.exp(-abs(u)) / 2,
        48.0,
    ),
    "epanechnikov": (
        lambda u: 0.75 * (1 - u * u) if abs(u) < 1 else mp.mpf(0),
        lambda u: -1.5 * u if abs(u) < 1 else mp.mpf(0),
        1.0,
    ),
}

_KNOTS = np.array([-6.0, -3.5, -1.0, 0.2, 1.7, 4.0, 6.5])
_TABLE = np.array([0.3, 2.9, -1.4, 1.1, 3.6, -0.8, 0.5])


def _table_jumps(lo: float, hi: float) -> list[float]:
    """Where the floored linear interpolation of the table crosses an integer."""
    points = []
    for i in range(len(_KNOTS) - 1):
        a, b, fa, fb = _KNOTS[i], _KNOTS[i + 1], _TABLE[i], _TABLE[i + 1]
        for n in range(math.floor(min(fa, fb)), math.ceil(max(fa, fb)) + 1):
            if min(fa, fb) < n < max(fa, fb):
                points.append(a + (n - fa) * (b - a) / (fb - fa))
    return [p for p in points if lo < p < hi]


def _integer_jumps(scale: float):
    return lambda lo, hi: [
        n / scale for n in range(math.ceil(lo * scale), math.floor(hi * scale) + 1)
    ]


# name: (numpy f, torch f, mpmath f, jumps in (lo, hi))
FUNCTIONS = {
    "floor": (np.floor, torch.floor, mp.floor, _integer_jumps(1.0)),
    "floor4_sin": (
        lambda y: np.floor(4 * y) * np.sin(y),
        lambda y: torch.floor(4 * y) * torch.sin(y),
        lambda y: mp.floor(4 * y) * mp.sin(y),
        _integer_jumps(4.0),
    ),
    "sawtooth": (
        lambda y: y - np.floor(y),
        lambda y: y - torch.floor(y),
        lambda y: y - mp.floor(y),
        _integer_jumps(1.0),
    ),
    "table": (
        lambda y: np.floor(np.interp(y, _KNOTS, _TABLE)),
        lambda y: torch.floor(torch.from_numpy(np.interp(y.detach().numpy(), _KNOTS, _TABLE))),
        lambda y: mp.floor(np.interp(float(y), _KNOTS, _TABLE)),
        lambda lo, hi: _table_jumps(lo, hi) + [k for k in _KNOTS if lo < k < hi],
    ),
    "sign_decay": (
        lambda y: np.sign(y) / (1 + y * y),
        lambda y: torch.sign(y) / (1 + y * y),
        lambda y: mp.sign(y) / (1 + y * y),
        lambda lo, hi: [0.0] if lo < 0.0 < hi else [],
    ),
}


def reference(name: str, kernel: str, width: float, x: float) -> tuple[float, float]:
    """``g(x)`` and ``g'(x)`` by mpmath quadrature split at every jump."""
    f = FUNCTIONS[name][2]
    k, dk, reach = DENSITIES[kernel]
    lo, hi = x - reach * width, x + reach * width
    cuts = sorted({lo, hi, x, *FUNCTIONS[name][3](lo, hi)})
    with mp.workdps(20):
        w = mp.mpf(width)
        value = mp.quad(lambda y: f(y) * k((x - y) / w) / w, cuts)
        slope = mp.quad(lambda y: f(y) * dk((x - y) / w) / (w * w), cuts)
    return float(value), float(slope)


CASES = [
    ("floor", "gaussian", 0.01), ("floor", "gaussian", 0.3), ("floor", "logistic", 1.0),
    ("floor", "laplace", 3.0), ("floor", "epanechnikov", 2.0), ("floor", "gaussian", 10.0),
    ("floor4_sin", "gaussian", 1.0), ("floor4_sin", "logistic", 0.05),
    ("sawtooth", "laplace", 0.5), ("sawtooth", "epanechnikov", 0.001),
    ("table", "gaussian", 0.7), ("table", "logistic", 0.2),
    ("sign_decay", "gaussian", 0.4), ("sign_decay", "laplace", 2.0),
]  # fmt: skip
POINTS = np.array([-2.37, -0.5, 0.0031, 0.81, 2.2])


@pytest.fixture(scope="module")
def results():
    """Per case: reference, value, gradient and error estimate at every point."""
    out = {}
    for name, kernel, width in CASES:
        refs = np.array([reference(name, kernel, width, float(p)) for p in POINTS])
        g = mol.smooth(FUNCTIONS[name][1], kernel=kernel, width=width)
        x = torch.tensor(POINTS, requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error", mol.AccuracyWarning)
            value, error = g(x, return_error=True)
            (grad,) = torch.autograd.grad(value.sum(), x)
        out[(name, kernel, width)] = (refs, to_numpy(value), to_numpy(grad), to_numpy(error))
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}")
def test_value_and_gradient_at_the_default_tol(results, case):
    refs, value, grad, _ = results[case]
    scale = np.maximum(1.0, np.abs(refs[:, 0]) + 1.0)
    assert np.max(np.abs(value - refs[:, 0]) / scale) < 1e-8
    # the score-function gradient, relative to the scale of g' (1/w for a jump)
    grad_scale = np.maximum(1.0, np.max(np.abs(refs[:, 1])))
    assert np.max(np.abs(grad - refs[:, 1])) / grad_scale < 1e-8


def test_the_error_estimate_bounds_the_error(results):
    cases = [(est, abs(v - r)) for refs, value, _, error in results.values()
             for r, v, est in zip(refs[:, 0], value, error, strict=True)]  # fmt: skip
    covered = sum(est >= actual for est, actual in cases)
    assert covered >= 0.99 * len(cases)


def test_numpy_value_and_error_match_torch(results):
    name, kernel, width = CASES[6]
    value, error = mol.smooth(FUNCTIONS[name][0], kernel=kernel, width=width)(
        POINTS, return_error=True
    )
    refs, torch_value, _, _ = results[CASES[6]]
    np.testing.assert_allclose(value, torch_value, rtol=0, atol=1e-12)
    assert np.all(error >= np.abs(value - refs[:, 0]))


def test_budget_exhausted_warns_and_reports_the_error():
    """Jumps far denser than the budget can resolve: a warning, never a silent value."""
    g = mol.smooth(np.floor, kernel="logistic", width=300.0, max_nodes=3000)
    with pytest.warns(mol.AccuracyWarning, match="did not reach tol"):
        value, error = g(POINTS, return_error=True)
    actual = np.abs(value - mol.floor(POINTS, kernel="logistic", width=300.0))
    assert np.all(error >= actual) and np.max(error) > 1e-8


def test_tol_trades_accuracy_for_work():
    g_loose = mol.smooth(np.floor, kernel="logistic", width=1.0, tol=1e-4)
    g_tight = mol.smooth(np.floor, kernel="logistic", width=1.0, tol=1e-11, bisections=40)
    exact = mol.floor(POINTS, kernel="logistic", width=1.0)
    loose, loose_error = g_loose(POINTS, return_error=True)
    tight, tight_error = g_tight(POINTS, return_error=True)
    assert np.max(np.abs(loose - exact)) < 1e-4 * 4.0
    assert np.max(np.abs(tight - exact)) < 1e-11 and np.max(tight_error) < 1e-10
    assert np.max(tight_error) < np.max(loose_error)


# -- heavy tails: principal values and divergence ------------------------------------
def _cauchy_reference(f, x: float, width: float, jumps: list[float]) -> float:
    """``int f(x - wu) k(u) du`` over the line for the Cauchy kernel (absolutely
    convergent f), split at ``u = (x - c)/w`` for each jump ``c``."""
    with mp.workdps(20):
        cuts = sorted({-mp.inf, mp.inf, 0, *[(x - c) / width for c in jumps]})
        return float(mp.quad(lambda u: f(x - width * u) / (mp.pi * (1 + u * u)), cuts))


def test_cauchy_principal_value_of_linear_growth():
    """f(y) = y + tanh(y) has no Cauchy mean, but a principal value: x + E[tanh(x - wU)]."""
    width = 0.5
    g = mol.smooth(lambda y: y + np.tanh(y), kernel="cauchy", width=width)
    value, error = g(POINTS, return_error=True)
    expected = POINTS + np.array([_cauchy_reference(mp.tanh, p, width, []) for p in POINTS])
    np.testing.assert_allclose(value, expected, rtol=0, atol=1e-9)
    assert np.all(error >= np.abs(value - expected))


def test_cauchy_bounded_function_with_a_jump():
    width = 0.5
    g = mol.smooth(lambda y: np.sign(y) / (1 + y * y), kernel="cauchy", width=width)
    value, error = g(POINTS, return_error=True)
    f = lambda y: mp.sign(y) / (1 + y * y)  # noqa: E731
    expected = np.array([_cauchy_reference(f, p, width, [0.0]) for p in POINTS])
    np.testing.assert_allclose(value, expected, rtol=0, atol=1e-9)
    assert np.all(error >= np.abs(value - expected))


@pytest.mark.parametrize(
    ("f", "kernel"),
    [
        (np.abs, "cauchy"),
        (lambda y: np.maximum(y, 0.0), "cauchy"),
        (lambda y: y * y, "sqrt"),
        (lambda y: np.abs(y) ** 1.2, "cauchy"),
    ],
)
def test_divergent_convolutions_raise(f, kernel):
    g = mol.smooth(f, kernel=kernel, width=0.5)
    with pytest.raises(ValueError, match="diverges"):
        g(POINTS)
    with pytest.raises(ValueError, match="diverges"):
        mol.smooth(f, kernel=kernel, width=0.5, method="monte_carlo", seed=0)(POINTS)


def test_sqrt_kernel_linear_growth_matches_the_closed_form():
    """E|U| is finite for sqrt: relu and abs converge, to the closed forms."""
    for f, op in ((lambda y: np.maximum(y, 0.0), mol.relu), (np.abs, mol.abs)):
        value, error = mol.smooth(f, kernel="sqrt", width=0.5)(POINTS, return_error=True)
        exact = op(POINTS, kernel="sqrt", width=0.5)
        np.testing.assert_allclose(value, exact, rtol=0, atol=1e-9)
        assert np.all(error >= np.abs(value - exact))


def test_cauchy_staircase_warns_with_an_honest_estimate():
    """floor's steps go on to infinity, where the angle's panels cannot resolve them:
    the budget runs out, and the estimate covers the error (closed form: mol.floor)."""
    g = mol.smooth(np.floor, kernel="cauchy", width=0.5, max_nodes=30_000)
    with pytest.warns(mol.AccuracyWarning):
        value, error = g(POINTS, return_error=True)
    assert np.all(error >= np.abs(value - mol.floor(POINTS, kernel="cauchy", width=0.5)))


# -- randomized quasi-Monte Carlo ---------------------------------------------------------
def test_sobol_standard_error_is_honest():
    """Over 60 seeds the z-scores of scrambled Sobol estimates have spread about 1
    (t with 15 degrees of freedom: the spread of 16 replicate means)."""
    x = np.array([0.01, 0.51])
    exact = mol.floor(x, kernel="gaussian", width=0.5)
    z = []
    for seed in range(60):
        g = mol.smooth(np.floor, kernel="gaussian", width=0.5, method="monte_carlo",
                       samples=2048, sampler="sobol", seed=seed)  # fmt: skip
        value, stderr = g(x, return_stderr=True)
        z.append((value - exact) / stderr)
    z = np.array(z)
    assert 0.7 < np.std(z) < 1.4  # sampling spread of a 60-sample std is about 0.1
    assert np.all(np.abs(np.mean(z, axis=0)) < 4.0 / math.sqrt(60))


def test_sobol_beats_independent_draws_for_smooth_f():
    x = np.linspace(-2.0, 2.0, 9) + 0.01
    exact = mol.smooth(np.tanh, kernel="gaussian", width=0.5)(x)
    options = {"kernel": "gaussian", "width": 0.5, "method": "monte_carlo", "samples": 16384}
    qmc_value, qmc_stderr = mol.smooth(np.tanh, sampler="sobol", seed=3, **options)(
        x, return_stderr=True
    )
    _, plain_stderr = mol.smooth(np.tanh, seed=3, **options)(x, return_stderr=True)
    assert np.max(np.abs(qmc_value - exact) / qmc_stderr) < 5.0
    # measured ratios 10 to 80: the QMC error falls like 1/n, not 1/sqrt(n)
    assert np.median(plain_stderr / qmc_stderr) > 5.0


def test_sobol_options():
    with pytest.raises(ValueError, match="sampler"):
        mol.smooth(np.floor, width=1.0, sampler="halton", method="monte_carlo")
    with pytest.raises(ValueError, match="sampler"):
        mol.smooth(np.floor, width=1.0, sampler="sobol")
    with pytest.raises(TypeError, match="NumPy"):
        mol.smooth(torch.floor, width=1.0, method="monte_carlo", sampler="sobol",
                   seed=torch.Generator())  # fmt: skip
    with pytest.raises(ValueError, match=">= 32"):
        mol.smooth(np.floor, width=1.0, method="monte_carlo", sampler="sobol", samples=16)
    # a gradient through the score function, as for independent draws
    g = mol.smooth(torch.floor, kernel="logistic", width=0.3, method="monte_carlo",
                   samples=65536, sampler="sobol", seed=0)  # fmt: skip
    x = torch.tensor([0.1, 0.45], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(g(x).sum(), x)
    t = x.detach().clone().requires_grad_(True)
    (exact,) = torch.autograd.grad(mol.floor(t, kernel="logistic", width=0.3).sum(), t)
    np.testing.assert_allclose(to_numpy(grad), to_numpy(exact), rtol=0, atol=0.02)


def test_jit_uses_one_level_and_still_warns():
    """Under jax.jit one level of 64 panels (unless max_nodes is given); where it does
    not meet tol, the warning comes from a run-time callback."""
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(POINTS)
    exact = mol.floor(POINTS, kernel="logistic", width=1.0)
    coarse = mol.smooth(jnp.floor, kernel="logistic", width=1.0)
    with pytest.warns(mol.AccuracyWarning, match="traced"):
        jax.jit(coarse)(x).block_until_ready()
        jax.effects_barrier()
    # an explicit budget: levels (two here) under lax.cond
    adaptive = mol.smooth(jnp.floor, kernel="gaussian", width=0.3, max_nodes=960)
    value, error = jax.jit(lambda v: adaptive(v, return_error=True))(x)
    exact = mol.floor(POINTS, kernel="gaussian", width=0.3)
    assert np.max(np.abs(np.asarray(value) - exact)) < 1e-9
    assert np.all(np.asarray(error) >= np.abs(np.asarray(value) - exact))
