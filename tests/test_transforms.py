"""Every op under jax.jit and jax.vmap, torch.compile and torch.func.vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from conftest import OPS, op_kernel_pairs

PAIRS = op_kernel_pairs()
X = np.array([[-2.5, -0.3, 0.0], [0.4, 1.0, 7.75]])


@pytest.mark.parametrize(("op", "kernel"), PAIRS, ids=[f"{o}-{k}" for o, k in PAIRS])
def test_jax_jit_and_vmap(op, kernel):
    fn = OPS[op]
    expected = fn(X, width=0.3, kernel=kernel)
    jitted = jax.jit(lambda v: fn(v, width=0.3, kernel=kernel))
    np.testing.assert_allclose(np.asarray(jitted(jnp.array(X))), expected, rtol=1e-14, atol=1e-15)
    mapped = jax.vmap(lambda row: fn(row, width=0.3, kernel=kernel))(jnp.array(X))
    np.testing.assert_allclose(np.asarray(mapped), expected, rtol=1e-14, atol=1e-15)
    grads = jax.jit(jax.vmap(jax.grad(lambda v: fn(v, width=0.3, kernel=kernel))))(jnp.array(X[0]))
    assert np.all(np.isfinite(np.asarray(grads)))


@pytest.mark.parametrize(("op", "kernel"), PAIRS, ids=[f"{o}-{k}" for o, k in PAIRS])
def test_torch_func_vmap(op, kernel):
    fn = OPS[op]
    expected = fn(X, width=0.3, kernel=kernel)
    mapped = torch.func.vmap(lambda row: fn(row, width=0.3, kernel=kernel))(torch.tensor(X))
    np.testing.assert_allclose(mapped.numpy(), expected, rtol=1e-14, atol=1e-15)


# torch.compile costs seconds per graph; one graph per kernel covers every op
@pytest.mark.parametrize("kernel", ["logistic", "cauchy", "epanechnikov"])
def test_torch_compile_without_graph_breaks(kernel):
    names = [n for n, _ in PAIRS if _ == kernel]

    def all_ops(v):
        return torch.stack([OPS[n](v, width=0.3, kernel=kernel) for n in names])

    torch._dynamo.reset()
    compiled = torch.compile(all_ops, fullgraph=True)
    x = torch.tensor(X, requires_grad=True)
    out = compiled(x)
    expected = np.stack([OPS[n](X, width=0.3, kernel=kernel) for n in names])
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-12, atol=1e-13)
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.all(torch.isfinite(grad))


def test_two_input_and_user_ops_under_transforms():
    import mollifier as mol

    f = mol.Piecewise(breakpoints=[-1, 0, 2], pieces=[[0], [1, 1], [1, -0.5, 0.25], [0]])
    g = mol.smooth(f, kernel="laplace", width=0.3)

    def several(v):
        return [
            mol.greater(v, 0.5, width=0.3), mol.less(v, 0.5, width=0.3),
            mol.where(v, 2.0, -1.0, width=0.3), mol.delta(v, width=0.3),
            mol.equal(v, 1.0, width=0.3), g(v),
        ]  # fmt: skip

    expected = np.stack(several(X))
    jitted = jax.jit(lambda v: jnp.stack(several(v)))(jnp.array(X))
    np.testing.assert_allclose(np.asarray(jitted), expected, rtol=1e-14, atol=1e-15)
    torch._dynamo.reset()
    compiled = torch.compile(lambda v: torch.stack(several(v)), fullgraph=True)
    np.testing.assert_allclose(compiled(torch.tensor(X)).numpy(), expected, rtol=1e-12, atol=1e-13)
    mapped = torch.func.vmap(lambda v: torch.stack(several(v)))(torch.tensor(X))
    np.testing.assert_allclose(mapped.numpy(), np.moveaxis(expected, 0, 1), rtol=1e-14, atol=1e-15)
