"""The numerical engine: ``smooth(callable)`` by quadrature and Monte Carlo.

References are independent of the engine: the exact closed forms of ``mol.floor``,
``mol.relu``, ... (themselves checked against mpmath in test_accuracy), the
characteristic function for ``sin`` (``E[sin(x - wU)] = sin(x) phi(w)``), and mpmath
quadrature split at the integers for ``floor(y) sin(y)``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
import torch

import mollifier as mol
from conftest import to_backend, to_numpy
from mollifier import _reference as ref

ALL_KERNELS = sorted(mol.kernels)
# kernels integrated over a finite range of u (the heavy-tailed ones run in the angle
# u = tan(theta), where an f that keeps oscillating at infinity never settles)
BOUNDED_KERNELS = [
    k
    for k in ALL_KERNELS
    if math.isfinite(min(mol.kernels[k].support, mol.kernels[k].quadrature_range))
]
# points between the jumps of every kernel's derivatives (x +- w never an integer)
X = np.linspace(-2.9, 3.1, 61) + 0.0123
# jax.jit of the quadrature compiles for seconds: the engine and adapter are the same for
# every kernel (checked on NumPy and torch), so JAX runs one smooth and one compact kernel
JAX_KERNELS = ("gaussian", "epanechnikov")


def torch_derivatives(g, x: np.ndarray, order: int = 1) -> list[np.ndarray]:
    t = torch.tensor(x, requires_grad=True)
    out, value = [], g(t)
    for _ in range(order):
        (value,) = torch.autograd.grad(value.sum(), t, create_graph=True)
        out.append(to_numpy(value))
    return out


def jax_derivative(g, x: np.ndarray, order: int = 1) -> np.ndarray:
    h = g
    for _ in range(order):
        h = jax.grad(h)
    return np.asarray(jax.jit(jax.vmap(h))(jnp.asarray(x)))


@pytest.mark.parametrize("kernel", ["gaussian", "logistic", "laplace", "epanechnikov", "biweight"])
def test_floor_matches_the_exact_staircase_in_value_and_gradient(kernel):
    """The issue's acceptance test: default nodes, error <= 1e-6 in value and gradient."""
    width = 0.3
    exact_value = mol.floor(X, kernel=kernel, width=width)
    g_np = mol.smooth(np.floor, kernel=kernel, width=width)
    np.testing.assert_allclose(g_np(X), exact_value, rtol=0, atol=1e-6)

    g_torch = mol.smooth(torch.floor, kernel=kernel, width=width)
    (grad,) = torch_derivatives(g_torch, X)
    (exact_grad,) = torch_derivatives(lambda t: mol.floor(t, kernel=kernel, width=width), X)
    np.testing.assert_allclose(grad, exact_grad, rtol=0, atol=1e-6)
    if kernel in JAX_KERNELS:
        g_jax = mol.smooth(jnp.floor, kernel=kernel, width=width)
        np.testing.assert_allclose(jax_derivative(g_jax, X), exact_grad, rtol=0, atol=1e-6)
    # a staircase, yet a useful gradient: everywhere with kernels on the whole line,
    # within the support's reach (w) of a jump with the compact ones
    near = np.abs(X - np.round(X)) < (0.25 if mol.kernels[kernel].support < 1.5 else 0.5)
    assert np.all(grad[near] > 1e-3)


@pytest.mark.parametrize("kernel", ["gaussian", "logistic", "laplace", "epanechnikov", "biweight"])
def test_second_derivative_of_floor(kernel):
    width = 0.3
    g = mol.smooth(torch.floor, kernel=kernel, width=width)
    _, second = torch_derivatives(g, X, order=2)
    exact = torch_derivatives(lambda t: mol.floor(t, kernel=kernel, width=width), X, order=2)
    scale = np.max(np.abs(exact[1]))
    np.testing.assert_allclose(second, exact[1], rtol=0, atol=1e-6 * scale)
    if kernel not in JAX_KERNELS:
        return
    np.testing.assert_allclose(
        jax_derivative(mol.smooth(jnp.floor, kernel=kernel, width=width), X, 2),
        exact[1], rtol=0, atol=1e-6 * scale,
    )  # fmt: skip


def test_floor_times_sin_against_mpmath():
    """A product with jumps and curvature, against quadrature split at the integers."""
    width = 0.4

    def reference(x: float) -> float:
        def integrand(y):
            return mp.floor(y) * mp.sin(y) * ref.pdf("gaussian", (x - y) / width) / width

        lo, hi = math.floor(x - 12 * width), math.ceil(x + 12 * width)
        return float(mp.quad(integrand, list(range(lo, hi + 1))))

    with mp.workdps(30):
        points = [-1.7, -0.2, 0.0, 0.5, 2.35]
        expected = np.array([reference(p) for p in points])
    g = mol.smooth(lambda y: np.floor(y) * np.sin(y), kernel="gaussian", width=width)
    np.testing.assert_allclose(g(np.array(points)), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("kernel", BOUNDED_KERNELS)
def test_smooth_function_against_the_characteristic_function(kernel):
    """E[sin(x - wU)] = sin(x) phi(w), and its derivatives cos(x) phi(w), -sin(x) phi(w).

    (Not Cauchy: its quadrature runs in the angle, where sin(x - w tan(theta)) oscillates
    without end towards the edges; bounded f with limits at +-inf is tested below.)
    """
    width = 0.7
    damping = float(mol.kernels[kernel].char_fn(width))
    g = mol.smooth(torch.sin, kernel=kernel, width=width)
    t = torch.tensor(X)
    np.testing.assert_allclose(to_numpy(g(t)), np.sin(X) * damping, rtol=0, atol=1e-9)
    orders = 1 if mol.kernels[kernel].max_derivative_order < 2 else 2
    derivatives = torch_derivatives(g, X, order=orders)
    expected = [np.cos(X) * damping, -np.sin(X) * damping]
    for got, want, tol in zip(derivatives, expected, (1e-8, 1e-7), strict=False):
        np.testing.assert_allclose(got, want, rtol=0, atol=tol)


@pytest.mark.parametrize(
    ("name", "op", "kernel"),
    [
        ("relu", mol.relu, "gaussian"),
        ("relu", mol.relu, "logistic"),
        ("abs", mol.abs, "laplace"),
        ("clip", lambda x, **k: mol.clip(x, -1.0, 2.0, **k), "epanechnikov"),
        ("step", mol.step, "cauchy"),
        ("sign", mol.sign, "cauchy"),
        ("sign", mol.sign, "uniform"),
    ],
)
def test_kinks_and_jumps_of_piecewise_functions(name, op, kernel):
    """The numerical engine on a Piecewise agrees with the exact engine (kinks located)."""
    pieces = {
        "relu": mol.Piecewise([0.0], [[0.0], [0.0, 1.0]]),
        "abs": mol.Piecewise([0.0], [[0.0, -1.0], [0.0, 1.0]]),
        "clip": mol.Piecewise([-1.0, 2.0], [[-1.0], [0.0, 1.0], [2.0]]),
        "step": mol.Piecewise([0.0], [[0.0], [1.0]]),
        "sign": mol.Piecewise([0.0], [[-1.0], [1.0]]),
    }[name]
    g = mol.smooth(pieces, kernel=kernel, width=0.5, method="quadrature")
    np.testing.assert_allclose(g(X), op(X, kernel=kernel, width=0.5), rtol=0, atol=1e-8)


def test_monte_carlo_is_unbiased_within_its_standard_error():
    f = lambda y: np.floor(y) * np.sin(y)  # noqa: E731
    exact = mol.smooth(f, kernel="gaussian", width=0.3)(X)
    g = mol.smooth(f, kernel="gaussian", width=0.3, method="monte_carlo", samples=20_000, seed=7)
    estimate, stderr = g(X, return_stderr=True)
    z = (estimate - exact) / stderr
    # 61 correlated z-scores (the samples are shared): all within 5 standard errors,
    # and their root mean square is O(1) rather than a sign of bias
    assert np.max(np.abs(z)) < 5.0
    assert np.sqrt(np.mean(z * z)) < 2.5
    np.testing.assert_array_equal(g(X), estimate)  # an int seed: the same samples each call


def test_antithetic_pairs_reduce_the_variance():
    f = np.tanh  # monotone: f(x - wU) and f(x + wU) are negatively correlated
    options = {"kernel": "gaussian", "width": 0.3, "method": "monte_carlo", "seed": 3}
    _, paired = mol.smooth(f, samples=20_000, **options)(X, return_stderr=True)
    _, plain = mol.smooth(f, samples=20_000, antithetic=False, **options)(X, return_stderr=True)
    # the same number of evaluations of f; measured ratios 3.1 to 2.7e4 (median 4.1)
    assert np.min(plain**2 / paired**2) > 2.0


def test_monte_carlo_gradient_by_the_score_function():
    g = mol.smooth(
        torch.floor, kernel="logistic", width=0.3, method="monte_carlo", samples=200_000,
        seed=torch.Generator().manual_seed(0),
    )  # fmt: skip
    (grad,) = torch_derivatives(g, X)
    (exact,) = torch_derivatives(lambda t: mol.floor(t, kernel="logistic", width=0.3), X)
    # the score estimator's standard deviation is about sqrt(E[tanh^2]/n)/w per unit
    # range of f: ~0.004 here; 0.03 is over six of them
    np.testing.assert_allclose(grad, exact, rtol=0, atol=0.03)


@pytest.mark.parametrize(("kernel", "options"), [
    ("gaussian", {"antithetic": False}), ("gaussian", {"sampler": "sobol"}),
    ("laplace", {"antithetic": False}), ("gumbel", {}), ("gumbel", {"antithetic": False}),
])  # fmt: skip
def test_monte_carlo_derivatives_with_the_score_control_variate(kernel, options):
    """The baseline (f's mean over the other independent groups, times the score less its
    known mean) leaves the derivative estimates unbiased and independent of f's level."""
    x = np.array([0.25, 0.5, 2.75])
    exact = [
        torch_derivatives(mol.smooth(torch.floor, kernel=kernel, width=0.3), x, order=2)[i]
        for i in (0, 1)
    ]  # quadrature, to 1e-9
    estimates: list[list[np.ndarray]] = [[], []]
    for seed in range(8):
        shifted = []
        for level in (0.0, 1e3):
            g = mol.smooth(lambda y, level=level: torch.floor(y) + level, kernel=kernel,
                           width=0.3, method="monte_carlo", samples=2048, seed=seed,
                           **options)  # fmt: skip
            shifted.append(torch_derivatives(g, x, order=2))
        for i in (0, 1):  # f + 1000 has the same derivatives, to rounding
            np.testing.assert_allclose(shifted[1][i], shifted[0][i], rtol=0, atol=1e-8)
            estimates[i].append(shifted[0][i])
    for i in (0, 1):
        values = np.array(estimates[i])
        stderr = values.std(0, ddof=1) / math.sqrt(len(values))
        # (+1e-12: at x = 0.5 the second derivative is 0 and so is every estimate)
        assert np.all(np.abs(values.mean(0) - exact[i]) <= 4.0 * stderr + 1e-12), (i, exact[i])


@pytest.mark.parametrize("seed_kind", ["int", "numpy", "torch", "jax"])
def test_seeds_of_every_framework(seed_kind):
    backend = {"int": "numpy", "numpy": "numpy", "torch": "torch", "jax": "jax"}[seed_kind]
    seed = {
        "int": 5,
        "numpy": np.random.default_rng(5),
        "torch": torch.Generator().manual_seed(5),
        "jax": jax.random.key(5),
    }[seed_kind]
    f = {"numpy": np.tanh, "torch": torch.tanh, "jax": jnp.tanh}[backend]
    g = mol.smooth(f, kernel="gaussian", width=0.5, method="monte_carlo", samples=4000, seed=seed)
    x = to_backend(backend, X)
    estimate, stderr = g(x, return_stderr=True)
    exact = mol.smooth(np.tanh, kernel="gaussian", width=0.5)(X)
    assert np.max(np.abs(to_numpy(estimate) - exact) / to_numpy(stderr)) < 5.0


def test_jax_key_under_jit():
    g = mol.smooth(jnp.sin, kernel="laplace", width=0.5, method="monte_carlo",
                   samples=2000, seed=jax.random.key(0))  # fmt: skip
    x = jnp.asarray(X)
    np.testing.assert_allclose(jax.jit(g)(x), g(x), rtol=1e-12, atol=1e-12)


def test_every_backend_and_shape_under_jit(backend):
    g = mol.smooth(lambda y: y - y // 1.0, kernel="gaussian", width=0.25)
    values = np.linspace(-2, 2, 24).reshape(2, 3, 4)
    x = to_backend(backend, values)
    out = g(x)
    assert tuple(out.shape) == (2, 3, 4)
    np.testing.assert_allclose(
        to_numpy(out), mol.frac(values, kernel="gaussian", width=0.25), rtol=0, atol=1e-8
    )
    if backend == "jax":
        # traced, one level of 64 panels; eager, the first level that meets tol
        np.testing.assert_allclose(jax.jit(g)(x), out, rtol=0, atol=1e-9)
        grads = jax.jit(jax.grad(lambda v: g(v).sum()))(x)
        exact = jax.grad(lambda v: mol.frac(v, kernel="gaussian", width=0.25).sum())(x)
        np.testing.assert_allclose(grads, exact, rtol=0, atol=1e-7)


def test_scalar_and_dtype(backend):
    g = mol.smooth(lambda y: y > 0, kernel="logistic", width=0.5)  # boolean results are fine
    for dtype in ("float32", "float64"):
        out = g(to_backend(backend, [-1.0, 0.0, 2.0], dtype))
        assert str(out.dtype).endswith(dtype)
        expected = mol.step(np.array([-1.0, 0.0, 2.0]), kernel="logistic", width=0.5)
        tol = 1e-6 if dtype == "float32" else 1e-9
        np.testing.assert_allclose(to_numpy(out), expected, rtol=0, atol=tol)
    assert np.ndim(g(1.5)) == 0


@pytest.mark.parametrize("method", ["quadrature", "monte_carlo"])
def test_torch_func_vmap_grad_and_second_derivative(method):
    """The score-derivative node's vmap rule: the engine is elementwise, so a vmapped
    dimension is a batch dimension; torch.func.grad twice is the second derivative."""
    seeded = {"seed": 0} if method == "monte_carlo" else {}
    g = mol.smooth(torch.floor, width=0.3, method=method, **seeded)
    x = torch.tensor(X[:12].reshape(3, 4))
    torch.testing.assert_close(torch.func.vmap(g)(x), g(x), rtol=0, atol=0)
    exact = torch_derivatives(lambda t: mol.floor(t, width=0.3), X[:12], order=2)
    second = torch.func.vmap(torch.func.grad(torch.func.grad(g)))(x.flatten())
    if method == "quadrature":
        np.testing.assert_allclose(second.numpy(), exact[1], atol=1e-6 * np.abs(exact[1]).max())
    xt = x.clone().requires_grad_(True)
    (first,) = torch.autograd.grad(g(xt).sum(), xt)
    torch.testing.assert_close(torch.func.grad(lambda v: g(v).sum())(x), first)


def test_torch_compile_fullgraph():
    # one level (torch.compile runs every level: no test on the values in the graph)
    g = mol.smooth(torch.floor, kernel="gaussian", width=0.3, nodes=240, max_nodes=240,
                   bisections=4, tol=1.0)  # fmt: skip
    compiled = torch.compile(g, fullgraph=True)
    x = torch.linspace(-1, 1, 7, dtype=torch.float64, requires_grad=True)
    eager_value, compiled_value = g(x), compiled(x)
    torch.testing.assert_close(compiled_value, eager_value)
    (eager_grad,) = torch.autograd.grad(eager_value.sum(), x)
    (compiled_grad,) = torch.autograd.grad(compiled_value.sum(), x)
    torch.testing.assert_close(compiled_grad, eager_grad)


def test_straight_through_forwards_f_and_backpropagates_the_smooth_gradient():
    g = mol.smooth(torch.floor, kernel="gaussian", width=0.3, straight_through=True)
    x = torch.tensor(X, requires_grad=True)
    y = g(x)
    torch.testing.assert_close(y, torch.floor(x.detach()), rtol=0, atol=0)
    (grad,) = torch.autograd.grad(y.sum(), x)
    (exact,) = torch_derivatives(lambda t: mol.floor(t, kernel="gaussian", width=0.3), X)
    np.testing.assert_allclose(to_numpy(grad), exact, rtol=0, atol=1e-6)


def test_autodiff_gradient_is_pathwise():
    """gradient='autodiff' differentiates f at the nodes: right for smooth f, 0 for floor."""
    smooth_f = mol.smooth(torch.sin, kernel="gaussian", width=0.7, gradient="autodiff")
    (grad,) = torch_derivatives(smooth_f, X)
    np.testing.assert_allclose(grad, np.cos(X) * math.exp(-0.49 / 2), rtol=0, atol=1e-9)
    (zero,) = torch_derivatives(mol.smooth(torch.floor, width=0.3, gradient="autodiff"), X)
    assert np.all(zero == 0.0)


def test_gradient_reaches_closure_parameters_with_autodiff():
    scale = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    g = mol.smooth(lambda y: scale * torch.sin(y), kernel="gaussian", width=0.5,
                   gradient="autodiff")  # fmt: skip
    g(torch.tensor([0.3, 1.1], dtype=torch.float64)).sum().backward()
    expected = (np.sin(0.3) + np.sin(1.1)) * math.exp(-0.125)
    assert abs(float(scale.grad) - expected) < 1e-9


def test_nan_from_f_gives_nan_where_it_is_reached():
    g = mol.smooth(lambda y: np.where(y > 5.0, np.nan, np.floor(y)), kernel="epanechnikov",
                   width=0.5)  # fmt: skip
    out = g(np.array([0.0, 5.0, 9.0]))
    assert np.isfinite(out[0]) and np.isnan(out[1]) and np.isnan(out[2])
    assert np.isnan(mol.smooth(np.floor, width=0.5)(np.array([np.nan])))[0]


def test_infinite_inputs_give_the_limit():
    g = mol.smooth(np.tanh, kernel="gaussian", width=0.5)
    # the weights sum to 1 within rounding
    np.testing.assert_allclose(g(np.array([-np.inf, np.inf])), [-1.0, 1.0], rtol=1e-15)
    cauchy = mol.smooth(np.tanh, kernel="cauchy", width=0.5)
    np.testing.assert_allclose(
        cauchy(np.array([-np.inf, np.inf])), [-1.0, 1.0], rtol=2e-12
    )  # mass 1e-12 beyond the angle grid


def test_derivatives_beyond_the_kernel_raise():
    g = mol.smooth(torch.floor, kernel="uniform", width=0.3)
    x = torch.tensor([0.4], requires_grad=True)
    (first,) = torch.autograd.grad(g(x).sum(), x, create_graph=True)
    with pytest.raises(ValueError, match="derivative order 2"):
        torch.autograd.grad(first.sum(), x)
    with pytest.raises(ValueError, match="derivative order 2"):
        jax.grad(jax.grad(mol.smooth(jnp.floor, kernel="uniform", width=0.3)))(0.4)
    mc = mol.smooth(torch.floor, kernel="epanechnikov", width=0.3, method="monte_carlo")
    with pytest.raises(ValueError, match="derivative order 1"):
        torch.autograd.grad(mc(x).sum(), x)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"width": math.inf}, ValueError, "width"),
        ({"width": -1.0}, ValueError, "width"),
        ({}, ValueError, "width is required"),
        ({"width": 1.0, "tol": -0.1}, ValueError, "tol"),
        ({"width": 1.0, "method": "monte_carlo", "tol": 0.1}, ValueError, "tol"),
        ({"width": 1.0, "nodes": 960, "max_nodes": 480}, ValueError, "max_nodes"),
        ({"width": 1.0, "nodes": 0}, ValueError, "nodes"),
        ({"width": 1.0, "nodes": 2.5}, TypeError, "nodes"),
        ({"width": 1.0, "bisections": -1}, ValueError, "bisections"),
        ({"width": 1.0, "method": "simpson"}, ValueError, "method"),
        ({"width": 1.0, "gradient": "fd"}, ValueError, "gradient"),
        ({"width": 1.0, "samples": 100}, ValueError, "samples"),
        ({"width": 1.0, "method": "monte_carlo", "samples": 3}, ValueError, "even"),
        ({"width": 1.0, "method": "monte_carlo", "nodes": 64}, ValueError, "nodes"),
        ({"width": 1.0, "method": "monte_carlo", "seed": "abc"}, TypeError, "seed"),
        ({"width": 1.0, "method": "exact"}, ValueError, "Piecewise"),
        ({"width": 1.0, "kernel": "boxcar"}, ValueError, "boxcar"),
    ],
)
def test_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        mol.smooth(np.floor, **kwargs)


def test_bad_callables():
    x = np.linspace(-1, 1, 5)
    with pytest.raises(TypeError, match="callable"):
        mol.smooth(3.0, width=1.0)
    with pytest.raises(ValueError, match="elementwise"):
        mol.smooth(lambda y: np.sum(y), width=1.0)(x)
    with pytest.raises(TypeError, match="real numbers"):
        mol.smooth(lambda y: y + 1j, width=1.0)(x)
    with pytest.raises(TypeError, match="same framework"):
        mol.smooth(lambda y: np.asarray(y), width=1.0)(torch.tensor(x))
    with pytest.raises(ValueError, match="return_stderr"):
        mol.smooth(np.floor, width=1.0)(x, return_stderr=True)
    with pytest.raises(TypeError, match="torch inputs"):
        mol.smooth(np.floor, width=1.0, method="monte_carlo",
                   seed=torch.Generator())(x)  # fmt: skip
    piecewise = mol.Piecewise([0.0], [[0.0], [1.0]])
    with pytest.raises(ValueError, match="not 'exact'"):
        mol.smooth(piecewise, width=1.0, nodes=64)


def test_repr_names_the_configuration():
    text = repr(mol.smooth(np.floor, kernel="laplace", width=0.5, nodes=100))
    assert "floor" in text and "laplace" in text and "nodes=120" in text


def test_accuracy_table_tool_runs(capsys):
    """docs/accuracy.md's table comes from tools/numerical_accuracy.py; keep it runnable."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parent.parent / "tools" / "numerical_accuracy.py"
    spec = importlib.util.spec_from_file_location("numerical_accuracy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--widths", "0.3", "--kernels", "gaussian", "--functions", "floor"])
    row = capsys.readouterr().out.strip().splitlines()[-1]
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    assert cells[:3] == ["floor", "gaussian", "0.3"]
    value_error, gradient_error, estimate = (float(c) for c in cells[3:6])
    assert max(value_error, gradient_error) < 1e-8 and value_error <= estimate
    assert cells[6] == "480"
