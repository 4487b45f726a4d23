"""JAX custom derivatives built from the engine's formulas.

Every elementwise op keeps at most 2 full-size residuals under ``jax.grad`` (the slope),
softmax and logsumexp no more than ``jax.nn``'s; derivatives of every order agree with
the generic formula's (autodiff through the same array-API code, which is what a traced
width takes).
"""

from __future__ import annotations

import contextlib
import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.ad_checkpoint import print_saved_residuals

import mollifier as mol
from mollifier._catalogue import referenced

N = 1000


def residuals(f, *args):
    """``(all residuals, full-size ones)`` that ``jax.grad(f)`` keeps."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        print_saved_residuals(f, *args)
    lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
    shape = ",".join(str(s) for s in args[0].shape)
    return len(lines), sum(f"[{shape}]" in line for line in lines)


PAIRS = [(name, kernel) for name, op in referenced().items() for kernel in sorted(mol.kernels)
         if op.admits(mol.kernels[kernel])]  # fmt: skip


@pytest.mark.parametrize(("name", "kernel"), PAIRS)
def test_elementwise_ops_keep_at_most_two_full_size_residuals(name, kernel):
    op = referenced()[name]
    x = jnp.linspace(-3.0, 3.0, N)
    _, full = residuals(lambda v: op.example(v, width=0.3, kernel=kernel).sum(), x)
    assert full <= 2, (name, kernel, full)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda v: mol.softmax(v, width=0.5), lambda v: jax.nn.softmax(v / 0.5)),
        (lambda v: mol.logsumexp(v, width=0.5), lambda v: 0.5 * jax.nn.logsumexp(v / 0.5, -1)),
    ],
)
def test_reductions_keep_no_more_residuals_than_jax_nn(ours, theirs):
    x = jnp.ones((8, N))
    weights = jnp.arange(8.0 * N).reshape(8, N) if ours(x).ndim == 2 else jnp.arange(8.0)
    mine = residuals(lambda v: (ours(v) * weights).sum(), x)
    native = residuals(lambda v: (theirs(v) * weights).sum(), x)
    assert mine[0] <= native[0] and mine[1] <= native[1], (mine, native)


def _generic(op, width, kernel):
    """The same op through the generic formula: an array width takes no custom rule."""
    return lambda v: op.example(v, width=jnp.asarray(width, dtype=v.dtype), kernel=kernel)


# staircases take only float widths (no generic path to compare with): the
# finite-difference test below covers them
ARRAY_WIDTH_PAIRS = [(name, kernel) for name, kernel in PAIRS if referenced()[name].array_width]


@pytest.mark.parametrize(("name", "kernel"), ARRAY_WIDTH_PAIRS[::2])
def test_first_and_second_derivatives_match_the_generic_formula(name, kernel):
    op = referenced()[name]
    x = jnp.asarray([-2.3, -0.7, 0.011, 0.4, 1.3, 2.9])
    fast = lambda v: op.example(v, width=0.3, kernel=kernel)  # noqa: E731
    generic = _generic(op, 0.3, kernel)
    np.testing.assert_array_equal(fast(x), generic(x))
    grad_fast, grad_generic = fast, generic
    for _ in range(2):
        grad_fast, grad_generic = jax.grad(grad_fast), jax.grad(grad_generic)
        np.testing.assert_allclose(
            jax.vmap(grad_fast)(x), jax.vmap(grad_generic)(x), rtol=1e-9, atol=1e-12
        )


@pytest.mark.parametrize("name", ["floor", "round", "frac", "trunc", "quantize"])
@pytest.mark.parametrize("kernel", ["logistic", "gaussian", "laplace", "biweight"])
def test_staircase_gradients_match_finite_differences(name, kernel):
    op = referenced()[name]
    # no point at distance 0.3 = w from an integer, where compact kernels have a kink
    x = jnp.asarray([-2.37, -0.71, 0.011, 0.43, 1.21, 2.9])
    f = lambda v: op.example(v, width=0.3, kernel=kernel)  # noqa: E731
    grad = jax.vmap(jax.grad(f))(x)
    h = 1e-6
    numeric = (f(x + h) - f(x - h)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)
    second = jax.vmap(jax.grad(jax.grad(f)))(x)
    numeric2 = (jax.vmap(jax.grad(f))(x + h) - jax.vmap(jax.grad(f))(x - h)) / (2 * h)
    np.testing.assert_allclose(second, numeric2, rtol=1e-5, atol=1e-5)


def test_jit_vmap_and_traced_width_keep_working():
    x = jnp.linspace(-2.0, 2.0, 9)
    f = jax.jit(lambda v, w: mol.relu(v, width=w, kernel="gaussian"))
    np.testing.assert_allclose(f(x, 0.3), mol.relu(x, width=0.3, kernel="gaussian"), rtol=1e-15)
    dw = jax.grad(lambda w: mol.relu(x, width=w).sum())(0.3)  # a learnable width
    h = 1e-6
    numeric = (mol.relu(x, width=0.3 + h).sum() - mol.relu(x, width=0.3 - h).sum()) / (2 * h)
    assert abs(float(dw) - float(numeric)) < 1e-7
    g = jax.jit(jax.vmap(jax.grad(lambda v: mol.floor(v, width=0.2))))
    assert np.all(np.isfinite(np.asarray(g(x))))
    lse = jax.jit(jax.grad(lambda v: mol.logsumexp(v, width=0.5)))
    np.testing.assert_allclose(lse(x), mol.softmax(x, width=0.5), rtol=1e-14)


def test_special_values_under_grad():
    x = jnp.asarray([jnp.nan, -jnp.inf, jnp.inf, 0.0])
    for op in (mol.relu, mol.gelu, mol.step):
        grad = jax.vmap(jax.grad(lambda v, f=op: f(v, width=0.5)))(x)
        assert np.isnan(grad[0]) and np.all(np.isfinite(np.asarray(grad[1:])))
