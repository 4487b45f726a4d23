"""Functions of vectors (``smooth(f, event_ndim=1)``), the Gumbel kernel and the
Fenchel-Young loss.

References are independent of the Monte Carlo engine: ``softmax(x / w)`` for the
Gumbel-max identity, the closed-form ``mol.maximum`` at width ``w sqrt(2)`` for the
perturbed max of two Gaussian-perturbed coordinates (``U_1 - U_2 ~ sqrt(2) N(0, 1)``),
``w logsumexp(x / w) + gamma w`` for the perturbed max under Gumbel noise, and finite
differences of those exact functions for the gradients. Monte Carlo checks are within 4
standard errors: the engine's own for values, the spread of independent seeds for
gradients.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import mollifier as mol
from conftest import BACKENDS, to_backend, to_numpy

EULER_GAMMA = 0.5772156649015329


def onehot_for(backend: str, n: int):
    """The argmax as a one-hot vector, batched over the leading axes."""
    if backend == "numpy":
        return lambda y: np.eye(n)[np.argmax(y, axis=-1)]
    if backend == "torch":
        return lambda y: torch.nn.functional.one_hot(y.argmax(-1), n).to(y.dtype)
    return lambda y: jax.nn.one_hot(jnp.argmax(y, axis=-1), n, dtype=y.dtype)


def max_for(backend: str):
    if backend == "numpy":
        return lambda y: np.max(y, axis=-1)
    if backend == "torch":
        return lambda y: y.max(-1).values
    return lambda y: jnp.max(y, axis=-1)


def softmax(x: np.ndarray, w: float) -> np.ndarray:
    e = np.exp((x - x.max(-1, keepdims=True)) / w)
    return e / e.sum(-1, keepdims=True)


def gradient(backend: str, g, x: np.ndarray, cotangent: np.ndarray, **call) -> np.ndarray:
    """``d/dx sum(cotangent * g(x))`` by the framework's reverse mode."""
    if backend == "torch":
        t = torch.tensor(x, requires_grad=True)
        (torch.tensor(cotangent) * g(t, **call)).sum().backward()
        return to_numpy(t.grad)
    c = jnp.asarray(cotangent)
    return np.asarray(jax.grad(lambda v: jnp.sum(c * g(v, **call)))(jnp.asarray(x)))


def central_difference(fn, x: np.ndarray, cotangent: np.ndarray, h: float = 1e-6) -> np.ndarray:
    out = np.zeros_like(x)
    for index in np.ndindex(*x.shape):
        step = np.zeros_like(x)
        step[index] = h
        out[index] = np.sum(cotangent * (fn(x + step) - fn(x - step))) / (2.0 * h)
    return out


def within(estimate, truth, stderr, sigmas: float = 4.0) -> None:
    estimate, truth, stderr = (np.asarray(to_numpy(a)) for a in (estimate, truth, stderr))
    assert np.all(stderr > 0), stderr
    z = np.abs(estimate - truth) / stderr
    assert np.all(z <= sigmas), (estimate, truth, stderr, z)


# -- values ---------------------------------------------------------------------------
X3 = np.array([[0.1, 0.5, -0.3], [1.0, 0.0, 0.0], [-2.0, 0.4, 0.35]])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sampler", ["random", "sobol"])
def test_gumbel_max_identity_is_softmax(backend, sampler):
    """E[onehot(argmax(x + wG))] = softmax(x / w): the Gumbel kernel is U = -G."""
    w = 0.5
    g = mol.smooth(onehot_for(backend, 3), kernel="gumbel", width=w, event_ndim=1,
                   samples=8192, seed=11, sampler=sampler)  # fmt: skip
    value, stderr = g(to_backend(backend, X3), return_stderr=True)
    assert value.shape == X3.shape and stderr.shape == X3.shape
    within(value, softmax(X3, w), stderr)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("antithetic", [True, False])
def test_perturbed_max_of_two_gaussian_coordinates_is_the_smooth_maximum(backend, antithetic):
    w = 0.7
    x = np.array([[0.3, -0.2], [1.5, 1.4], [-1.0, 0.6], [0.0, 0.0]])
    g = mol.smooth(max_for(backend), kernel="gaussian", width=w, event_ndim=1, samples=8192,
                   seed=3, antithetic=antithetic)  # fmt: skip
    value, stderr = g(to_backend(backend, x), return_stderr=True)
    assert value.shape == (4,)
    exact = mol.maximum(x[:, 0], x[:, 1], kernel="gaussian", width=w * math.sqrt(2.0))
    within(value, exact, stderr)


def test_standard_errors_are_honest():
    """Over 60 independent estimates, |error| <= 2 stderr about 95% of the time (>= 85%
    asked: 60 draws of a 95% event fall below 51 with probability 1e-3)."""
    w, x = 1.0, np.array([0.4, -0.1, 0.2])
    truth = softmax(x, w)
    for sampler in ("random", "sobol"):
        g = mol.smooth(onehot_for("numpy", 3), kernel="gumbel", width=w, event_ndim=1,
                       samples=256, sampler=sampler)  # fmt: skip
        rng = np.random.default_rng(5)
        hits = 0
        for _ in range(60):
            value, stderr = g(x, return_stderr=True, seed=rng)
            hits += int(abs(value[0] - truth[0]) <= 2.0 * stderr[0])
        assert hits >= 51, (sampler, hits)


def test_a_shared_batch_and_any_output_shape():
    """f may return any event shape (here a matrix per row); the batch axes are kept."""
    x = np.zeros((2, 4, 3))

    def outer(y):
        h = np.eye(3)[np.argmax(y, axis=-1)]
        return h[..., :, None] * h[..., None, :]

    value = mol.smooth(outer, kernel="gumbel", width=1.0, event_ndim=1, samples=512, seed=0)(x)
    assert value.shape == (2, 4, 3, 3)
    np.testing.assert_allclose(np.trace(value, axis1=-2, axis2=-1), 1.0, atol=1e-12)


# -- gradients ------------------------------------------------------------------------
def _seed_spread(backend, g, x, cotangent, seeds=8):
    estimates = np.stack([gradient(backend, g, x, cotangent, seed=s) for s in range(seeds)])
    return estimates.mean(0), estimates.std(0, ddof=1) / math.sqrt(seeds)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_gradient_of_the_perturbed_max_against_finite_differences_of_the_exact(backend):
    w = 0.7
    x = np.array([[0.3, -0.2], [1.5, 1.4], [-1.0, 0.5]])
    cotangent = np.array([1.0, -0.5, 2.0])

    def exact(v):
        return to_numpy(mol.maximum(v[:, 0], v[:, 1], kernel="gaussian", width=w * math.sqrt(2)))

    reference = central_difference(exact, x, cotangent)
    g = mol.smooth(max_for(backend), kernel="gaussian", width=w, event_ndim=1, samples=2048)
    mean, stderr = _seed_spread(backend, g, x, cotangent)
    within(mean, reference, stderr)


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("options", [
    {"antithetic": True}, {"antithetic": False}, {"sampler": "sobol"},
])  # fmt: skip
def test_gumbel_argmax_jacobian_against_finite_differences_of_softmax(backend, options):
    """Every baseline path (asymmetric antithetic pairs, single draws, QMC replicates)
    keeps the score-function Jacobian unbiased."""
    w = 0.5
    x = X3[:2]
    cotangent = np.array([[1.0, -2.0, 0.5], [0.3, 0.0, 1.0]])
    reference = central_difference(lambda v: softmax(v, w), x, cotangent)
    g = mol.smooth(onehot_for(backend, 3), kernel="gumbel", width=w, event_ndim=1,
                   samples=2048, **options)  # fmt: skip
    mean, stderr = _seed_spread(backend, g, x, cotangent)
    within(mean, reference, stderr)


def test_jax_jit_vmap_and_a_traced_key():
    w = 0.5
    g = mol.smooth(onehot_for("jax", 3), kernel="gumbel", width=w, event_ndim=1, samples=4096)
    x = jnp.asarray(X3)
    loss = jax.jit(lambda v, key: jnp.sum(g(v, seed=key)[:, 0]))
    keys = jax.random.split(jax.random.PRNGKey(0), 6)
    grads = np.stack([np.asarray(jax.grad(loss)(x, k)) for k in keys])
    reference = central_difference(lambda v: softmax(v, w), X3, np.array([[1.0, 0, 0]] * 3))
    within(grads.mean(0), reference, grads.std(0, ddof=1) / math.sqrt(len(keys)))
    rows = jax.jit(jax.vmap(lambda v: g(v, seed=keys[0])))(x)
    assert rows.shape == (3, 3)
    np.testing.assert_allclose(np.asarray(rows).sum(-1), 1.0, atol=1e-12)


def test_straight_through_forwards_f_and_backpropagates_the_smooth_jacobian():
    f = onehot_for("torch", 3)
    plain = mol.smooth(f, kernel="gumbel", width=0.5, event_ndim=1, samples=1024, seed=2)
    hard = mol.smooth(f, kernel="gumbel", width=0.5, event_ndim=1, samples=1024, seed=2,
                      straight_through=True)  # fmt: skip
    x = torch.tensor(X3, requires_grad=True)
    out = hard(x)
    assert torch.equal(out, f(x.detach()))
    (grad_hard,) = torch.autograd.grad(out[:, 1].sum(), x)
    (grad_plain,) = torch.autograd.grad(plain(x)[:, 1].sum(), x)
    torch.testing.assert_close(grad_hard, grad_plain, rtol=0, atol=0)


def test_autodiff_gradient_is_pathwise():
    """gradient='autodiff' differentiates f at the draws: for the max, the one-hot."""
    x = torch.tensor([[0.3, -0.2]], requires_grad=True)
    g = mol.smooth(lambda y: y.max(-1).values, kernel="gaussian", width=0.7, event_ndim=1,
                   samples=4096, seed=1, gradient="autodiff")  # fmt: skip
    (grad,) = torch.autograd.grad(g(x).sum(), x)
    onehot = mol.smooth(onehot_for("torch", 2), kernel="gaussian", width=0.7, event_ndim=1,
                        samples=4096, seed=1)  # fmt: skip
    torch.testing.assert_close(grad, onehot(x.detach()), rtol=0, atol=1e-12)


def test_second_derivatives_refuse():
    g = mol.smooth(onehot_for("jax", 3), kernel="gumbel", width=0.5, event_ndim=1,
                   samples=64, seed=0)  # fmt: skip
    with pytest.raises(ValueError, match="second derivatives"):
        jax.hessian(lambda v: jnp.sum(g(v)[0]))(jnp.asarray(X3[0]))
    gt = mol.smooth(onehot_for("torch", 3), kernel="gumbel", width=0.5, event_ndim=1,
                    samples=64, seed=0)  # fmt: skip
    x = torch.tensor(X3[0], requires_grad=True)
    (first,) = torch.autograd.grad(gt(x)[0], x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        torch.autograd.grad(first.sum(), x)


# -- Fenchel-Young --------------------------------------------------------------------
THETA = np.array([[1.0, 0.2, -0.5], [0.0, 0.3, 0.1]])
Y_TRUE = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def fy(backend, theta, y_true, **kw):
    options = {"maximizer": onehot_for(backend, 3), "width": 1.0, "kernel": "gumbel",
               "samples": 2048, "seed": 4} | kw  # fmt: skip
    return mol.fenchel_young_loss(theta, y_true, **options)


def test_fenchel_young_value_is_the_perturbed_max_minus_the_score_of_the_target():
    """Under Gumbel noise F(theta) = w logsumexp(theta / w) + gamma w; spread of seeds."""
    losses = np.stack([fy("numpy", THETA, Y_TRUE, seed=s) for s in range(12)])
    logsumexp = np.log(np.exp(THETA).sum(-1))
    exact = logsumexp + EULER_GAMMA - (THETA * Y_TRUE).sum(-1)
    within(losses.mean(0), exact, losses.std(0, ddof=1) / math.sqrt(12))


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_fenchel_young_gradient_is_the_perturbed_maximizer_minus_the_target(backend):
    theta, y_true = to_backend(backend, THETA), to_backend(backend, Y_TRUE)
    if backend == "torch":
        t, y = theta.clone().requires_grad_(), y_true.clone().requires_grad_()
        grad_theta, grad_true = torch.autograd.grad(fy(backend, t, y).sum(), (t, y))
    else:
        grad_theta, grad_true = jax.grad(lambda t, y: fy(backend, t, y).sum(), (0, 1))(
            theta, y_true
        )
    # the identity, on the same draws: the perturbed argmax of smooth(event_ndim=1)
    ybar = mol.smooth(onehot_for(backend, 3), kernel="gumbel", width=1.0, event_ndim=1,
                      samples=2048, seed=4)(theta)  # fmt: skip
    np.testing.assert_allclose(to_numpy(grad_theta), to_numpy(ybar) - Y_TRUE, atol=1e-12)
    np.testing.assert_allclose(to_numpy(grad_true), -THETA, atol=0)
    # and the derivative of the estimated loss itself (common draws: convex, piecewise
    # linear in theta, so central differences are exact away from an argmax flip)
    fd = central_difference(lambda v: fy("numpy", v, Y_TRUE), THETA, np.ones(2))
    np.testing.assert_allclose(to_numpy(grad_theta), fd, atol=1e-6)
    # in expectation, softmax(theta) - y_true (Gumbel-max)
    assert np.max(np.abs(to_numpy(grad_theta) - (softmax(THETA, 1.0) - Y_TRUE))) < 0.05


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_fenchel_young_keeps_its_digits_at_large_scores(backend):
    """The loss is O(w) however large theta is: its draws' <y*, theta - wU> and the
    target's <y_true, theta> once cancelled after the mean, leaving eps |theta| of noise
    (float32 at theta = 1e5: 7% of the loss; at 1e30 it was 1e22)."""
    theta = np.array([[1.0, 0.2, -0.5]]) + np.array([[0.0], [1e5], [1e30]]) * [1, 0, 0]
    y_true = np.broadcast_to([1.0, 0.0, 0.0], theta.shape)
    small = fy("numpy", theta[:1], y_true[:1], width=0.1)  # 1 - 0.2 = 8 widths: no flips
    for dtype in ("float32", "float64"):
        got = to_numpy(fy(backend, to_backend(backend, theta.astype(dtype)),
                          to_backend(backend, y_true.astype(dtype)), width=0.1))  # fmt: skip
        # large theta: the target wins every draw, the loss is -w E<y*, U> = gamma w
        np.testing.assert_allclose(got[1:], got[1], rtol=1e-6)
        np.testing.assert_allclose(got[1], small[0], rtol=0.05)


def test_fenchel_young_under_jax_jit_with_a_traced_key():
    loss = jax.jit(lambda t, key: fy("jax", t, jnp.asarray(Y_TRUE), seed=key).sum())
    value = loss(jnp.asarray(THETA), jax.random.PRNGKey(1))
    assert value.shape == () and np.isfinite(float(value))
    grad = jax.jit(jax.grad(loss))(jnp.asarray(THETA), jax.random.PRNGKey(1))
    np.testing.assert_allclose(np.asarray(grad).sum(-1), 0.0, atol=1e-12)  # one-hot rows


# -- the Gumbel kernel ----------------------------------------------------------------
GUMBEL = mol.get_kernel("gumbel", numerical=True)


def test_gumbel_kernel_data_is_consistent():
    u = np.linspace(-8.0, 2.5, 43)
    np.testing.assert_allclose(GUMBEL.cdf(u), -np.expm1(-np.exp(u)), rtol=1e-15)
    h = 1e-5
    np.testing.assert_allclose(
        GUMBEL.pdf(u), (GUMBEL.cdf(u + h) - GUMBEL.cdf(u - h)) / (2 * h), rtol=1e-7, atol=1e-14
    )
    from mollifier._backend import backend_of

    be = backend_of(u)
    np.testing.assert_allclose(GUMBEL._quantile(be, GUMBEL.cdf(u)), u, atol=1e-12)
    log_pdf = lambda v: np.log(GUMBEL.pdf(v))  # noqa: E731
    np.testing.assert_allclose(
        GUMBEL._score(be, u, 1), (log_pdf(u + h) - log_pdf(u - h)) / (2 * h), atol=1e-7
    )
    second = (GUMBEL.pdf(u + h) - 2 * GUMBEL.pdf(u) + GUMBEL.pdf(u - h)) / h**2
    np.testing.assert_allclose(GUMBEL._density_derivative(be, u, 2), second, atol=1e-5)
    samples = GUMBEL.sample(200_000, seed=0)
    assert abs(samples.mean() + EULER_GAMMA) < 4 * math.sqrt(math.pi**2 / 6 / 200_000)
    assert abs(np.mean(np.abs(samples)) - GUMBEL.mean_abs) < 0.01
    assert abs(np.mean(samples**2) - GUMBEL.second_moment) < 0.03
    assert not GUMBEL.symmetric and all(k.symmetric for k in mol.kernels.values())


# JAX runs the same kernel data through the same engine (its quadrature in eager mode
# takes seconds, covered for the other kernels in test_numerical)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_scalar_smooth_with_the_gumbel_kernel(backend):
    """The step smooths to E[1(x - wU > 0)] = K(x / w), not to the symmetric 1 - K(-x/w)."""
    w = 0.8
    x = np.linspace(-3.0, 1.0, 11)  # P(U > 1.25) = 3e-2: no rare event for 4096 draws
    exact = -np.expm1(-np.exp(x / w))

    def step(y):
        return y > 0

    g = mol.smooth(step, kernel="gumbel", width=w)
    xb = to_backend(backend, x)
    np.testing.assert_allclose(to_numpy(g(xb)), exact, atol=1e-9)
    if backend != "numpy":
        slope = gradient(backend, g, x, np.ones_like(x))
        np.testing.assert_allclose(slope, GUMBEL.pdf(x / w) / w, atol=1e-8)
    mc = mol.smooth(step, kernel="gumbel", width=w, method="monte_carlo", samples=4096, seed=0)
    value, stderr = mc(xb, return_stderr=True)
    within(value, exact, np.maximum(to_numpy(stderr), 1e-12))
    # E[U] = -gamma: the identity smooths to x + gamma w
    mean = mol.smooth(lambda y: y, kernel="gumbel", width=w)(x)
    np.testing.assert_allclose(mean, x + EULER_GAMMA * w, atol=1e-9)


# -- refusals -------------------------------------------------------------------------
def test_asymmetric_kernel_is_refused_where_the_library_assumes_symmetry():
    x = np.array([0.1, 0.5])
    with pytest.raises(ValueError, match="asymmetric"):
        mol.get_kernel("gumbel")
    for call in (
        lambda: mol.relu(x, kernel="gumbel", width=0.1),
        lambda: mol.floor(x, kernel=GUMBEL, width=0.1),
        lambda: mol.step(x, kernel="gumbel", tol=0.1),
        lambda: mol.error_bound("relu", kernel="gumbel", width=0.1),
        lambda: mol.maximum(x, 0.2, kernel="gumbel", width=0.1),
        lambda: mol.sort(x, kernel="gumbel", width=0.1, method="network"),
        lambda: mol.smooth(
            mol.Piecewise(breakpoints=[0], pieces=[[0], [1]]), kernel="gumbel", width=0.1
        ),
        lambda: GUMBEL.ramp(x, 1),
        lambda: GUMBEL.char_fn(x),
    ):
        with pytest.raises(ValueError, match="asymmetric"):
            call()
    with pytest.raises(ValueError, match="gumbel"):
        mol.get_kernel("gumbell")
    from mollifier import nn as mnn

    with pytest.raises(ValueError, match="asymmetric"):
        mnn.SmoothReLU(width=0.1, kernel="gumbel")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"event_ndim": 2}, "event_ndim must be"),
    ({"event_ndim": True}, "event_ndim must be"),
    ({"event_ndim": 1.0}, "event_ndim must be"),
    ({"event_ndim": 1, "method": "quadrature"}, "Monte Carlo only"),
    ({"event_ndim": 1, "tol": 1e-3}, "tol applies"),
    ({"event_ndim": 1, "samples": 2}, "samples must be >= 4"),
])  # fmt: skip
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mol.smooth(onehot_for("numpy", 3), kernel="gumbel", width=1.0, **kwargs)


def test_bad_inputs_and_callables():
    g = mol.smooth(onehot_for("numpy", 3), kernel="gumbel", width=1.0, event_ndim=1, samples=64)
    with pytest.raises(ValueError, match="last axis"):
        g(np.float64(0.3))
    with pytest.raises(ValueError, match="return_error"):
        g(X3, return_error=True)
    with pytest.raises(TypeError, match="seed"):
        g(X3, seed="seven")
    with pytest.raises(ValueError, match="keep the leading"):
        mol.smooth(lambda y: np.max(y), width=1.0, event_ndim=1, samples=64)(X3)
    with pytest.raises(TypeError, match="same framework"):
        mol.smooth(lambda y: torch.tensor(y), width=1.0, event_ndim=1, samples=64)(X3)
    with pytest.raises(ValueError, match="seed= at call time"):
        mol.smooth(np.floor, width=1.0)(X3, seed=1)
    onehot = onehot_for("numpy", 3)
    with pytest.raises(ValueError, match="theta's shape"):
        mol.fenchel_young_loss(THETA, Y_TRUE[:1], maximizer=onehot, width=1.0)
    with pytest.raises(ValueError, match="theta's shape"):
        mol.fenchel_young_loss(THETA, Y_TRUE, maximizer=lambda y: y[..., :2], width=1.0)
    with pytest.raises(TypeError, match="maximizer must be callable"):
        mol.fenchel_young_loss(THETA, Y_TRUE, maximizer=3, width=1.0)
    with pytest.raises(ValueError, match="width"):
        mol.fenchel_young_loss(THETA, Y_TRUE, maximizer=onehot, width=-1.0)
    with pytest.raises(TypeError, match="one framework"):
        mol.fenchel_young_loss(THETA, torch.tensor(Y_TRUE), maximizer=onehot, width=1.0)


# -- the example ----------------------------------------------------------------------
def _shortest_path_example():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parents[1] / "examples" / "shortest_path.py"
    spec = importlib.util.spec_from_file_location("shortest_path_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shortest_path_example_solver_is_exact_and_training_cuts_the_regret():
    example = _shortest_path_example()
    side = example.SIDE
    # every monotone path: choose which of the 2 (side - 1) moves go down
    import itertools

    paths = []
    for downs in itertools.combinations(range(2 * side - 2), side - 1):
        cells, i, j = [0], 0, 0
        for move in range(2 * side - 2):
            i, j = (i + 1, j) if move in downs else (i, j + 1)
            cells.append(i * side + j)
        paths.append(np.isin(np.arange(side * side), cells).astype(float))
    paths = np.stack(paths)
    theta = torch.randn(3, 4, side * side, generator=torch.Generator().manual_seed(0),
                        dtype=torch.float64)  # fmt: skip
    best = paths[np.argmax(theta.numpy() @ paths.T, axis=-1)]
    np.testing.assert_array_equal(example.shortest_path(theta).numpy(), best)
    result = example.main(steps=40, train=64, test=64)
    assert result["regret_after"] < 0.5 * result["regret_before"], result
    assert result["optimal_after"] > result["optimal_before"] + 0.2, result


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_rows_and_float32(backend):
    x = np.array([[0.1, np.nan, 0.3], [0.2, 0.0, -0.1]])
    g = mol.smooth(onehot_for(backend, 3), kernel="gumbel", width=0.5, event_ndim=1,
                   samples=4096, seed=0)  # fmt: skip
    value, stderr = g(to_backend(backend, x), return_stderr=True)
    assert np.all(np.isnan(to_numpy(value)[0])) and np.all(np.isnan(to_numpy(stderr)[0]))
    x32 = to_backend(backend, x[1:], "float32")
    value32 = g(x32)
    assert str(value32.dtype).endswith("float32")
    # the same draws rounded to float32: a near-tie may flip (one flip moves 1/4096)
    np.testing.assert_allclose(to_numpy(value32)[0], to_numpy(value)[1], atol=1e-3)


@pytest.mark.parametrize("kernel", ["uniform", "epanechnikov"])
def test_kernels_without_a_usable_score_refuse_the_gradient(kernel):
    g = mol.smooth(onehot_for("torch", 3), kernel=kernel, width=0.5, event_ndim=1, samples=64,
                   seed=0)  # fmt: skip
    x = torch.tensor(X3)
    assert g(x).shape == (3, 3)  # the value is fine
    with pytest.raises(ValueError, match="score-function gradient"):
        g(x.clone().requires_grad_())


def test_a_large_jacobian_is_not_kept_but_recomputed_as_a_product(monkeypatch):
    """Beyond JACOBIAN_ELEMENTS torch saves x and the draws and evaluates f again in
    backward: the same estimate as contracting the Jacobian."""
    from mollifier._engine import numerical

    x = torch.tensor(X3)
    cotangent = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.0, 1.0], [0.0, 1.0, 0.0]])
    grads = []
    for limit in (numerical.JACOBIAN_ELEMENTS, 0):
        monkeypatch.setattr(numerical, "JACOBIAN_ELEMENTS", limit)
        for options in ({}, {"antithetic": False}, {"sampler": "sobol"}):
            g = mol.smooth(onehot_for("torch", 3), kernel="gumbel", width=0.5, event_ndim=1,
                           samples=512, seed=3, **options)  # fmt: skip
            t = x.clone().requires_grad_()
            (cotangent * g(t)).sum().backward()
            grads.append(t.grad)
    for kept, recomputed in zip(grads[:3], grads[3:], strict=True):
        torch.testing.assert_close(recomputed, kept, rtol=0, atol=1e-12)


def test_jax_recomputes_a_large_jacobian_as_a_product(monkeypatch):
    from mollifier._engine import numerical

    x = jnp.asarray(X3)
    cotangent = jnp.asarray([[1.0, -2.0, 0.5], [0.3, 0.0, 1.0], [0.0, 1.0, 0.0]])
    g = mol.smooth(onehot_for("jax", 3), kernel="gumbel", width=0.5, event_ndim=1,
                   samples=512, seed=3)  # fmt: skip
    kept = jax.grad(lambda v: jnp.sum(cotangent * g(v)))(x)
    monkeypatch.setattr(numerical, "JACOBIAN_ELEMENTS", 0)
    recomputed = jax.jit(jax.grad(lambda v: jnp.sum(cotangent * g(v))))(x)
    np.testing.assert_allclose(np.asarray(recomputed), np.asarray(kept), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="second derivatives"):
        jax.hessian(lambda v: jnp.sum(cotangent[0] * g(v)))(x[0])
