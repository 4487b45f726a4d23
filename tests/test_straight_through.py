"""Straight-through forwards the framework's own hard op bit for bit, on every backend.

The expected values are computed here with each framework's own functions, in the
caller's dtype, including -0.0, ±inf, NaN and subnormals; the smooth gradient still
flows backward.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import mollifier as mol
import mollifier.nn as mnn
from mollifier._catalogue import CATALOGUE
from test_fast_path import saved_for_backward

VALUES = [-2.5, -1.0, -0.5, -0.0, 0.0, 0.3, 0.5, 1.0, 2.0, 2.5, 7.25, -7.25, 1e-310, -1e-310,
          3e38, -3e38, 1e300, float("inf"), -float("inf"), float("nan")]  # fmt: skip


def frameworks():
    yield (
        "numpy",
        np,
        lambda v, d: np.asarray(v, dtype=np.float64).astype(d),
        ["float64", "float32", "float16"],
    )
    yield (
        "torch",
        torch,
        lambda v, d: torch.tensor(v, dtype=torch.float64).to(getattr(torch, d)),
        ["float64", "float32", "float16", "bfloat16"],
    )
    yield "jax", jnp, lambda v, d: jnp.asarray(np.asarray(v, dtype=np.float64), dtype=getattr(jnp, d)), [
        "float64", "float32", "float16", "bfloat16"]  # fmt: skip


CASES = [(name, xp, make, dtype) for name, xp, make, dtypes in frameworks() for dtype in dtypes]


@pytest.fixture(autouse=True)
def _quiet():
    with np.errstate(over="ignore", invalid="ignore"):  # 1e300 becomes inf in float32
        yield


IDS = [f"{name}-{dtype}" for name, _, _, dtype in CASES]


def to_float64(a):
    if isinstance(a, torch.Tensor):
        return a.detach().to(torch.float64).numpy()
    return np.asarray(a).astype(np.float64)


def dtype_of(a):
    return str(a.dtype).removeprefix("torch.")


def bits(a):
    """The bit patterns, the sign of zero included; every NaN as one pattern (a NaN's
    payload is not a value, and arithmetic on it is free to change it)."""
    if isinstance(a, torch.Tensor):
        a = a.detach()
        nan = torch.isnan(a).numpy()
        raw = a.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]).numpy()
    else:
        a = np.asarray(a)
        nan = np.isnan(a.astype(np.float32) if a.dtype.itemsize == 2 else a)
        raw = a.view({2: np.int16, 4: np.int32, 8: np.int64}[a.itemsize])
    return np.where(nan, -1, raw)


def expected(xp, op, x):
    """Each op's hard counterpart written with the framework's own functions."""
    zero = torch.zeros_like(x) if xp is torch else xp.zeros_like(x)
    maximum = torch.maximum if xp is torch else xp.maximum
    minimum = torch.minimum if xp is torch else xp.minimum
    relu = torch.relu(x) if xp is torch else jax.nn.relu(x) if xp is jnp else maximum(x, zero)
    return {
        # the step has no framework counterpart: its own piecewise form, NaN kept
        "step": xp.where(xp.isnan(x), x, xp.where(x >= 0, zero + 1, zero)),
        "sign": xp.sign(x),
        "relu": relu,  # the framework's own (torch.maximum drops -0.0 on its vector path)
        "leaky_relu": xp.where(x >= 0, x, 0.1 * x),
        "abs": xp.abs(x),
        "clip": minimum(maximum(x, zero - 1), zero + 2),
        "hinge": maximum(1.0 - x, zero),
        "floor": xp.floor(x),
        "ceil": xp.ceil(x),
        "round": xp.round(x),
        "trunc": xp.trunc(x),
        "frac": x - xp.floor(x),
        "gelu": relu,
        "swish": relu,
    }.get(op)


@pytest.mark.parametrize(("framework", "xp", "make", "dtype"), CASES, ids=IDS)
def test_elementwise_ops_forward_the_hard_op_bit_for_bit(framework, xp, make, dtype):
    x = make(VALUES, dtype)
    for name, op in CATALOGUE.items():
        with np.errstate(all="ignore"):
            want = expected(xp, name, x)
            if want is None:
                continue
            got = op.example(x, width=0.3, kernel="gaussian", straight_through=True)
        assert got.dtype == x.dtype, name
        np.testing.assert_array_equal(bits(got), bits(want), err_msg=f"{name} {framework} {dtype}")


@pytest.mark.parametrize(("framework", "xp", "make", "dtype"), CASES, ids=IDS)
def test_two_input_ops_forward_the_hard_op_bit_for_bit(framework, xp, make, dtype):
    x = make(VALUES, dtype)
    a = make(VALUES[::-1], dtype)
    inf = make([float("inf")] * len(VALUES), dtype)
    zeros = make([0.0] * len(VALUES), dtype)
    maximum = torch.maximum if xp is torch else xp.maximum
    minimum = torch.minimum if xp is torch else xp.minimum
    with np.errstate(all="ignore"):
        cases = {
            "maximum": (mol.maximum(x, a, width=0.3, straight_through=True), maximum(x, a)),
            "minimum": (mol.minimum(x, a, width=0.3, straight_through=True), minimum(x, a)),
            "where": (mol.where(x, a, x, width=0.3, straight_through=True), xp.where(x >= 0, a, x)),
            "greater": (mol.greater(x, a, width=0.3, straight_through=True), (x > a) + zeros),
            "less": (mol.less(x, a, width=0.3, straight_through=True), (x < a) + zeros),
            "equal": (mol.equal(x, a, width=0.3, straight_through=True), (x == a) + zeros),
            "equal inf": (mol.equal(inf, inf, width=0.3, straight_through=True), zeros + 1),
            # the hard where never multiplies inf by 0
            "where inf": (mol.where(x, inf, zeros, width=0.3, straight_through=True),
                          xp.where(x >= 0, inf, zeros)),
        }  # fmt: skip
    for name, (got, want) in cases.items():
        np.testing.assert_array_equal(bits(got), bits(want), err_msg=f"{name} {framework} {dtype}")


def _vector_norm(xp, x, ord):
    if xp is torch:
        return torch.linalg.vector_norm(x, ord=ord, dim=-1)
    if xp is jnp:
        return jnp.linalg.vector_norm(x, ord=ord, axis=-1)
    import array_api_compat.numpy as anp

    return anp.linalg.vector_norm(x, ord=ord, axis=-1)


@pytest.mark.parametrize(("framework", "xp", "make", "dtype"), CASES, ids=IDS)
def test_reductions_forward_the_hard_op_bit_for_bit(framework, xp, make, dtype):
    rows = [[3.0, -4.0, 0.0, -0.0], [0.0, -0.0, 0.0, 0.0], [1e-310, 2.0, -7.25, 0.5],
            [float("inf"), 1.0, 2.0, 3.0], [float("nan"), 1.0, 2.0, 3.0]]  # fmt: skip
    x = make(rows, dtype)
    amax = torch.amax(x, dim=-1) if xp is torch else xp.max(x, axis=-1)
    amin = torch.amin(x, dim=-1) if xp is torch else xp.min(x, axis=-1)
    for ord in (0, 1, 1.5, 2, float("inf")):
        got = mol.norm(x, ord=ord, width=0.3, straight_through=True)
        want = _vector_norm(xp, x, ord)
        np.testing.assert_array_equal(bits(got), bits(want), err_msg=f"norm {ord} {framework}")
    for name, got, want in [
        ("logsumexp", mol.logsumexp(x, width=0.3, straight_through=True), amax),
        ("max softmax", mol.max(x, width=0.3, method="softmax", straight_through=True), amax),
        ("min", mol.min(x, width=0.3, straight_through=True), amin),
    ]:
        np.testing.assert_array_equal(bits(got), bits(want), err_msg=f"{name} {framework}")


def test_straight_through_gradients_are_the_smooth_ones():
    x = torch.tensor([-1.0, 0.2, 3.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([0.5, 0.2, -1.0], dtype=torch.float64)
    for op in (mol.maximum, mol.minimum):
        (hard_grad,) = torch.autograd.grad(op(x, b, width=0.3, straight_through=True).sum(), x)
        (smooth_grad,) = torch.autograd.grad(op(x, b, width=0.3).sum(), x)
        torch.testing.assert_close(hard_grad, smooth_grad, rtol=0, atol=0)
    (hard_grad,) = torch.autograd.grad(mol.norm(x, width=0.3, straight_through=True), x)
    (smooth_grad,) = torch.autograd.grad(mol.norm(x, width=0.3), x)
    torch.testing.assert_close(hard_grad, smooth_grad, rtol=0, atol=0)


@pytest.mark.parametrize(("framework", "xp", "make", "dtype"), CASES, ids=IDS)
def test_one_hot_and_index_forward_ties_shared_and_nan_as_nan(framework, xp, make, dtype):
    """The hard one-hot shares ties; ``argmax(index=True)`` forwards its expected index
    (the mean position of the maxima); a slice with a NaN forwards NaN (was zeros and
    index 0: a silent answer)."""
    nan, inf = float("nan"), float("inf")
    x = make([[1.0, 3.0, 3.0, 0.0], [5.0, 1.0, 2.0, nan], [-inf] * 4, [1.0, 2.0, inf, inf]],
             dtype)  # fmt: skip
    one_hot = np.array([[0, 0.5, 0.5, 0], [nan] * 4, [0.25] * 4, [0, 0, 0.5, 0.5]])
    got = mol.softmax(x, width=0.3, straight_through=True)
    np.testing.assert_array_equal(to_float64(got), one_hot, err_msg=framework)
    index = mol.argmax(x, width=0.3, index=True, straight_through=True)
    np.testing.assert_array_equal(to_float64(index), [1.5, nan, 1.5, 2.5], err_msg=framework)
    assert dtype_of(index) == dtype_of(x)
    low = mol.argmin(-x, width=0.3, index=True, straight_through=True)
    np.testing.assert_array_equal(to_float64(low), [1.5, nan, 1.5, 2.5], err_msg=framework)


def test_reduction_straight_through_gradients_are_the_smooth_ones():
    """One node forwards the hard value and backpropagates the smooth reduction's
    gradient (min, logmeanexp, argmax(index=True) among them), bit for bit."""
    x = torch.tensor([[-1.0, 0.2, 3.0, 0.1], [2.0, 2.0, -0.5, 1.0]], dtype=torch.float64)
    ops = {
        "min": lambda v, st: mol.min(v, width=0.3, straight_through=st),
        "min softmax": lambda v, st: mol.min(v, width=0.3, method="softmax", straight_through=st),
        "logmeanexp": lambda v, st: mol.logmeanexp(v, width=0.3, straight_through=st),
        "argmax index": lambda v, st: mol.argmax(v, width=0.3, index=True, straight_through=st),
        "argmin index": lambda v, st: mol.argmin(v, width=0.3, index=True, straight_through=st),
    }
    weights = torch.tensor([1.0, -0.5], dtype=torch.float64)
    for name, op in ops.items():
        grads = []
        for st in (True, False):
            v = x.clone().requires_grad_()
            (g,) = torch.autograd.grad((op(v, st) * weights).sum(), v)
            grads.append(g)
        torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0, msg=name)
        hard = jax.grad(lambda v, op=op: (op(v, True) * jnp.asarray([1.0, -0.5])).sum())
        smooth = jax.grad(lambda v, op=op: (op(v, False) * jnp.asarray([1.0, -0.5])).sum())
        np.testing.assert_allclose(hard(jnp.asarray(x.numpy())), smooth(jnp.asarray(x.numpy())),
                                   rtol=1e-15, atol=0, err_msg=name)  # fmt: skip


def test_weights_straight_through_recomputes_them_in_backward():
    """``softmax``/``log_softmax`` straight-through: the node forwards the hard one-hot
    (its log), saves the input and recomputes the weights with their cotangent in
    backward; gradients in ``x`` and a tensor width are the smooth ones (to round-off:
    torch's own softmax backward kernel sums in another order), -inf entries included."""
    inf = float("inf")
    x = torch.tensor([[-1.0, 0.2, 3.0, 0.1], [2.0, 2.0, -inf, 1.0]], dtype=torch.float64)
    g = torch.tensor([[1.0, -2.0, 0.5, 3.0], [-1.0, 0.25, 2.0, 1.0]], dtype=torch.float64)
    for name in ("softmax", "log_softmax"):
        op = getattr(mol, name)
        grads = []
        for st in (True, False):
            v = x.clone().requires_grad_()
            w = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
            y = op(v, width=w, straight_through=st)  # -inf entries: log(0) of the one-hot
            grads.append(torch.autograd.grad(y, (v, w), grad_outputs=g))
            y = op(v, width=0.3, straight_through=st)
            grads.append(torch.autograd.grad(y, v, grad_outputs=g))
        for got, want in zip(grads[:2], grads[2:]):
            torch.testing.assert_close(got, want, rtol=1e-14, atol=1e-15, msg=name)
        v = x.clone().requires_grad_()
        saved, _ = saved_for_backward(lambda: op(v, width=0.3, straight_through=True))
        assert len(saved) == 1, (name, len(saved))  # the input alone


def test_sau_and_hardened_modules_forward_the_hard_op_bit_for_bit():
    x = torch.tensor(VALUES, dtype=torch.float64)
    sau = mnn.SAU(0.1, width=0.7, straight_through=True).double()
    a = sau.negative_slope.detach()
    np.testing.assert_array_equal(bits(sau(x)), bits(torch.where(x >= 0, x, a * x)))
    norm = mnn.SmoothNorm(width=0.3).double()
    mnn.harden(norm)
    rows = torch.tensor([[3.0, -4.0, 0.0], [1e-310, 0.0, -0.0]], dtype=torch.float64)
    np.testing.assert_array_equal(bits(norm(rows)), bits(torch.linalg.vector_norm(rows, dim=-1)))


def test_jax_straight_through_under_jit_and_grad():
    x = jnp.asarray([-1.5, -0.0, 0.0, 0.4, 2.5])
    f = jax.jit(lambda v: mol.floor(v, width=0.2, straight_through=True))
    np.testing.assert_array_equal(bits(f(x)), bits(jnp.floor(x)))
    g = jax.grad(lambda v: mol.floor(v, width=0.2, straight_through=True).sum())(x)
    np.testing.assert_allclose(g, jax.grad(lambda v: mol.floor(v, width=0.2).sum())(x))


@pytest.mark.parametrize(
    ("make", "framework_min"),
    [
        (np.asarray, lambda x: np.min(x, axis=1)),
        (torch.tensor, lambda x: torch.amin(x, dim=1)),
        (jnp.asarray, lambda x: jnp.min(x, axis=1)),
    ],
)
def test_min_forwards_the_frameworks_min_on_signed_zeros(make, framework_min):
    # -max(-x) is not min(x) bit for bit: max(-[0, 0, -0]) may pick either zero
    x = make(np.array([[0.0, 0.0, -0.0], [-0.0, 0.0, -0.0], [-0.0, -0.0, 0.0]], np.float16))
    got = np.asarray(mol.min(x, axis=1, width=0.1, straight_through=True))
    expected = np.asarray(framework_min(x))
    assert np.array_equal(np.signbit(got), np.signbit(expected)), (got, expected)
