"""Gradients: finite differences in float64, torch and JAX agreeing, identities."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import mollifier as mol
from conftest import OPS, finite_mean_kernels, op_kernel_pairs

PAIRS = op_kernel_pairs()
# points at, near and away from the kinks and jumps of every op
POINTS = [-2.3, -1.0, -0.5, -0.1, 0.0, 0.05, 0.35, 0.5, 1.0, 1.7, 2.0, 3.2]


def torch_grad(fn, x, **kw):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(fn(xt, **kw).sum(), xt)
    return g.numpy()


@pytest.mark.parametrize(("op", "kernel"), PAIRS, ids=[f"{o}-{k}" for o, k in PAIRS])
@pytest.mark.parametrize("width", [0.07, 0.6, 2.5])
def test_gradient_matches_finite_differences(op, kernel, width):
    fn = OPS[op]
    x = np.array(POINTS)
    if mol.kernels[kernel].support == 1:
        # a compact kernel's derivative jumps where x sits exactly one width from a
        # breakpoint; central differences there give the average of the two sides
        x = x + 0.0137
    grad = torch_grad(fn, x, width=width, kernel=kernel)
    # central differences with an h that resolves the width; error O(h^2 f''') and
    # O(h) where a C^1 kernel (laplace, uniform) has a kink in its derivative
    h = 1e-6 * width
    fd = (fn(x + h, width=width, kernel=kernel) - fn(x - h, width=width, kernel=kernel)) / (2 * h)
    tolerance = 1e-6 * max(1.0, 1.0 / width) if kernel in ("laplace", "uniform") else 1e-6
    np.testing.assert_allclose(grad, fd, atol=tolerance, rtol=1e-6)
    jax_grad = jax.vmap(jax.grad(lambda v: fn(v, width=width, kernel=kernel)))(jnp.array(x))
    np.testing.assert_allclose(np.asarray(jax_grad), grad, atol=1e-13, rtol=1e-12)


@pytest.mark.parametrize("kernel", finite_mean_kernels())
def test_derivative_of_relu_is_step_and_of_step_is_delta(kernel):
    x = np.linspace(-3, 3, 61)
    for width in (0.05, 1.0):
        np.testing.assert_allclose(
            torch_grad(mol.relu, x, width=width, kernel=kernel),
            mol.step(x, width=width, kernel=kernel),
            atol=1e-14,
        )
        np.testing.assert_allclose(
            torch_grad(mol.step, x, width=width, kernel=kernel),
            mol.delta(x, width=width, kernel=kernel),
            atol=1e-12,
            rtol=1e-12,
        )


@pytest.mark.parametrize("kernel", sorted(mol.kernels))
def test_derivative_of_floor_is_the_wrapped_kernel(kernel):
    x = np.array([-3.3, -0.5, 0.013, 0.2, 0.5, 11.9])  # no point exactly w from an integer
    for width in (0.1, 0.7, 3.0):
        grad = torch_grad(mol.floor, x, width=width, kernel=kernel)
        n = np.arange(-4000, 4001)
        wrapped = mol.delta(x[:, None] - n[None, :], width=width, kernel=kernel).sum(axis=1)
        # heavy tails sum slowly: what lies beyond |n| = 4000 is at most the kernel's mass
        # there, 2 K(-(4000 - 13)/w) (Cauchy ~ w/(pi 2000), sqrt ~ w^2/4000^2)
        atol = 1e-10 + 2.0 * float(mol.kernels[kernel].cdf(np.array(-3987.0 / width)))
        np.testing.assert_allclose(grad, wrapped, atol=atol)
        assert np.all(grad >= 0)
        if mol.kernels[kernel].support == np.inf:
            assert np.all(grad > 0)


def test_straight_through_forward_is_hard_and_backward_is_smooth():
    x = np.array([-1.7, -0.5, 0.0, 0.3, 0.5, 2.5, -0.2])
    hard = {
        "step": (x >= 0).astype(float), "sign": np.sign(x), "relu": np.maximum(x, 0),
        "abs": np.abs(x), "floor": np.floor(x), "ceil": np.ceil(x), "round": np.round(x),
        "trunc": np.trunc(x), "frac": x - np.floor(x), "clip": np.clip(x, -1.0, 2.0),
        "hinge": np.maximum(1 - x, 0), "gelu": np.maximum(x, 0), "swish": np.maximum(x, 0),
        "leaky_relu": np.where(x >= 0, x, 0.1 * x),
        "quantize": 0.25 * np.round((x - 0.1) / 0.25) + 0.1,
    }  # fmt: skip
    for name, fn in OPS.items():
        for backend in ("torch", "jax"):
            if backend == "torch":
                xt = torch.tensor(x, requires_grad=True)
                out = fn(xt, width=0.3, straight_through=True)
                (g,) = torch.autograd.grad(out.sum(), xt)
                value, grad = out.detach().numpy(), g.numpy()
            else:
                value = np.asarray(fn(jnp.array(x), width=0.3, straight_through=True))
                grad = np.asarray(
                    jax.vmap(jax.grad(lambda v, f=fn: f(v, width=0.3, straight_through=True)))(
                        jnp.array(x)
                    )
                )
            np.testing.assert_array_equal(value, hard[name], err_msg=f"{name} {backend}")
            # bit for bit, the sign of zero included
            assert np.array_equal(np.signbit(value), np.signbit(hard[name])), (name, backend)
            np.testing.assert_allclose(grad, torch_grad(fn, x, width=0.3), atol=1e-14, err_msg=name)
        np.testing.assert_array_equal(fn(x, width=0.3, straight_through=True), hard[name])


@pytest.mark.parametrize("name", ["relu", "logsumexp", "softmax"])
def test_width_gradient_under_torch_func(name):
    # torch.func wraps the width, so its values cannot be read for the positivity check
    from torch.func import grad

    x = torch.linspace(-2.0, 2.0, 5, dtype=torch.float64)
    op = getattr(mol, name)

    def total(w):
        return op(x, width=w).pow(2).sum()

    w = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    (expected,) = torch.autograd.grad(total(w), w)
    torch.testing.assert_close(grad(total)(w.detach()), expected)
