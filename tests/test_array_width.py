"""Array widths (learnable, per channel) for the piecewise ops, gates and reductions."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import mollifier as mol
from conftest import OPS, op_kernel_pairs

W = np.array([0.05, 0.3, 2.0])


@pytest.mark.parametrize("op", [mol.relu, mol.abs, mol.step, mol.sign, mol.gelu, mol.swish])
@pytest.mark.parametrize("kernel", ["gaussian", "logistic", "epanechnikov"])
def test_array_width_equals_one_call_per_width(op, kernel):
    x = np.linspace(-2, 2, 9)[:, None]
    together = op(x, width=W, kernel=kernel)
    for j, w in enumerate(W):
        np.testing.assert_allclose(
            together[:, j], op(x[:, 0], width=float(w), kernel=kernel), rtol=1e-15
        )


@pytest.mark.parametrize("widths", [[0.01, 0.1], [10.0, 100.0], [0.1, 100.0]])
def test_clip_array_widths_take_the_right_form_read_or_traced(widths):
    """Breakpoints 1 apart: below a width of 4 the breakpoint form, above it the cluster
    form. Read widths (eager) take one form when it serves every entry, traced ones
    (jit) evaluate both; both equal one call per width."""
    x = np.linspace(-3.0, 4.0, 15)[:, None]
    w = np.array(widths)
    want = np.stack([mol.clip(x[:, 0], 0.0, 1.0, width=v, kernel="laplace") for v in widths], 1)
    np.testing.assert_allclose(mol.clip(x, 0.0, 1.0, width=w, kernel="laplace"), want, rtol=1e-15)
    jitted = jax.jit(lambda a, v: mol.clip(a, 0.0, 1.0, width=v, kernel="laplace"))
    np.testing.assert_allclose(jitted(jnp.asarray(x), jnp.asarray(w)), want, rtol=1e-14)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    np.testing.assert_allclose(mol.clip(xt, 0.0, 1.0, width=wt, kernel="laplace").detach(), want,
                               rtol=1e-15)  # fmt: skip
    assert torch.autograd.gradcheck(lambda a, v: mol.clip(a, 0.0, 1.0, width=v, kernel="laplace"),
                                    (xt, wt))  # fmt: skip


def test_gradient_with_respect_to_the_width():
    # d/dw [w softplus(x / w)] = softplus(x/w) - (x/w) sigmoid(x/w)
    x = torch.tensor([-1.0, 0.0, 0.7], dtype=torch.float64)
    w = torch.tensor([0.4, 0.4, 0.4], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(mol.relu(x, width=w).sum(), w)
    t = x / 0.4
    np.testing.assert_allclose(
        grad.numpy(), (torch.nn.functional.softplus(t) - t * torch.sigmoid(t)).numpy(), rtol=1e-14
    )
    gj = jax.grad(
        lambda v: mol.clip(jnp.array([0.3, 5.0]), -1.0, 1.0, width=v, kernel="cauchy").sum()
    )(jnp.asarray(0.2))
    h = 1e-6
    fd = (mol.clip(np.array([0.3, 5.0]), -1.0, 1.0, width=0.2 + h, kernel="cauchy").sum()
          - mol.clip(np.array([0.3, 5.0]), -1.0, 1.0, width=0.2 - h, kernel="cauchy").sum()) / (2 * h)  # fmt: skip
    assert float(gj) == pytest.approx(fd, rel=1e-6)


def test_array_width_in_reductions_and_under_jit():
    x = jnp.array([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]])
    w = jnp.array([[1.0], [1e-3]])
    out = jax.jit(lambda v, s: mol.logsumexp(v, width=s))(x, w)
    np.testing.assert_allclose(np.asarray(out), [np.log(np.exp([0, 1, 2]).sum()), 2.0], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(mol.softmax(x, width=w)).sum(axis=-1), [1.0, 1.0])


def test_array_width_errors():
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="finite positive"):
        mol.relu(x, width=torch.tensor([0.1, -1.0, 0.2]))
    with pytest.raises(TypeError, match="same framework"):
        mol.relu(x, width=np.array([0.1, 0.2, 0.3]))
    with pytest.raises(TypeError, match="floor needs width= as a Python number"):
        mol.floor(x, width=torch.tensor([0.1]))
    assert mol.relu(x, width=torch.tensor(0.5, dtype=torch.float64)).dtype == torch.float32


def _array_width_pairs():
    from mollifier._catalogue import CATALOGUE

    return [(o, k) for o, k in op_kernel_pairs() if CATALOGUE[o].array_width]


@pytest.mark.parametrize(("name", "kernel"), _array_width_pairs())
def test_width_gradient_finite_at_infinities_and_overflow(name, kernel):
    # x = ±inf, and x / w beyond float32's range at finite x: the terms sit at their
    # limits, which do not depend on the width (0 * d t/d w = 0 * inf gave NaN)
    x = torch.tensor([-math.inf, -3e38, -1.0, 0.0, 0.5, 3e38, math.inf], requires_grad=True)
    w = torch.tensor(1e-3, requires_grad=True)
    out = OPS[name](x, width=w, kernel=kernel)
    out.sum().backward()
    assert torch.isfinite(w.grad), (name, kernel, w.grad)
    assert torch.isfinite(x.grad).all(), (name, kernel, x.grad)

    def total(width):
        return jnp.sum(OPS[name](jnp.asarray(x.detach().numpy()), width=width, kernel=kernel))

    assert jnp.isfinite(jax.grad(total)(jnp.float32(1e-3))), (name, kernel)
