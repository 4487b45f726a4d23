"""The PyTorch fast path agrees with the generic array-API path (the reference).

Values to a few ulps, first and second derivatives likewise; only ``x`` is saved for
backward; torch.compile traces it without graph breaks; autocast and torch.func work.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import mollifier as mol
from mollifier import _backend
from mollifier._adapters import torch as adapter
from mollifier._adapters.torch import FUSED
from mollifier._catalogue import CATALOGUE
from mollifier._dispatch import axes_of
from mollifier._engine import gate
from mollifier._engine import staircase as stairs
from mollifier._engine.piecewise import ABS as _ABS
from mollifier._engine.piecewise import RELU as _RELU
from mollifier._engine.piecewise import SIGN as _SIGN
from mollifier._engine.piecewise import STEP as _STEP
from mollifier._engine.piecewise import Piecewise, convolve, formula

BE = _backend._torch_backend()
FUNCTIONS = {
    "step": _STEP,
    "sign": _SIGN,
    "relu": _RELU,
    "abs": _ABS,
    "clip": Piecewise([-1.0, 2.0], [[-1.0], [0.0, 1.0], [2.0]]),
    "hinge": Piecewise([1.0], [[1.0, -1.0], [0.0]]),
}
CASES = [
    (name, kernel)
    for name in FUNCTIONS
    for kernel in sorted(mol.kernels)
    if name not in CATALOGUE or CATALOGUE[name].admits(mol.kernels[kernel])
]


def generic(name: str, kernel: str, width: float):
    return lambda x: convolve(BE, FUNCTIONS[name], x, width, mol.get_kernel(kernel))


def fast(name: str, kernel: str, width: float):
    f = formula(FUNCTIONS[name], width, mol.get_kernel(kernel))
    return lambda x: adapter.elementwise(BE, f, x)


def saved_for_backward(run):
    """``(tensors autograd saved, result)`` of ``run()``."""
    saved = []

    def pack(tensor):
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = run()
    return saved, result


def assert_compiled_matches_eager(model, x):
    """``torch.compile(fullgraph=True)`` (no graph break) gives eager's value and gradient."""
    compiled = torch.compile(model, fullgraph=True)
    eager = model(x)
    out = compiled(x)
    torch.testing.assert_close(out, eager)
    torch.testing.assert_close(
        torch.autograd.grad(out.sum(), x)[0], torch.autograd.grad(eager.sum(), x)[0]
    )


def derivatives(fn, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = x.detach().requires_grad_(True)
    value = fn(x)
    (first,) = torch.autograd.grad(value.sum(), x, create_graph=True)
    if first.requires_grad:
        (second,) = torch.autograd.grad(first.sum(), x)
    else:  # the generic uniform step: a derivative that is constant in x has no graph
        second = torch.zeros_like(first)
    return value.detach(), first.detach(), second


@pytest.mark.parametrize(("name", "kernel"), CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_path_agrees_with_the_generic_path(name, kernel, dtype):
    width = 0.7
    values = np.concatenate([np.linspace(-6, 6, 241), [-1e6, -40.0, 0.0, 40.0, 1e6]])
    x = torch.tensor(values, dtype=dtype)
    eps = torch.finfo(dtype).eps
    fast_results = derivatives(fast(name, kernel, width), x)
    generic_results = derivatives(generic(name, kernel, width), x)
    for order, (got, want) in enumerate(zip(fast_results, generic_results, strict=True)):
        assert torch.all(torch.isfinite(got))
        # the generic path's double backward overflows to NaN at |x| = 1e6 for some
        # kernels; the fast path stays finite (checked above) and is compared elsewhere
        finite = torch.isfinite(want)
        if order > 0 and mol.kernels[kernel].support < math.inf:
            # at a compact kernel's support edge the fast path's slope takes the mean of
            # the one-sided derivatives (the uniform density is c/2 there, so that edges
            # meeting in a staircase keep its slope); autograd of the generic value
            # takes one side. Every other point is compared.
            finite &= (x / width).abs() != 1.0
        # a few ulps of the larger of the result and its natural scale w^-order; the
        # fused forms and the derivative's closed form round differently from the
        # generic sums (second derivatives of compact kernels: up to ~20 ulps)
        scale = torch.clamp(want.abs(), min=width**-order)
        error = (got - want).abs()[finite]
        assert torch.all(error <= (16 if order < 2 else 64) * eps * scale[finite]), error.max()


def test_fused_forms_cover_the_common_ops():
    logistic = type(mol.kernels["logistic"])
    assert {(f, k) for f, k in FUSED} >= {(_RELU, logistic), (_STEP, logistic)}


def test_a_user_kernel_named_logistic_gets_no_fused_form():
    """Fused forms are keyed by the kernel's class, never by its name."""

    class Impostor(type(mol.kernels["gaussian"])):
        name = "logistic"

    x = torch.linspace(-3, 3, 7, dtype=torch.float64)
    for op in (mol.relu, mol.step):
        got = op(x, width=0.5, kernel=Impostor())
        want = op(x, width=0.5, kernel="gaussian")  # generic and fused agree bit for bit
        assert torch.equal(got, want) or op is mol.step
        assert not torch.allclose(got, op(x, width=0.5, kernel="logistic"))


def _quantize(v, **knobs):
    return mol.quantize(v, 0.25, 0.1, **knobs)


@pytest.mark.parametrize("op", [mol.relu, mol.step, mol.abs, mol.sign, mol.hinge, _quantize])
def test_one_tensor_is_saved_for_backward(op):
    """Only x (or, for the logistic step and sign, the output y, as torch.sigmoid does)."""
    x = torch.randn(1000, requires_grad=True)
    saved, y = saved_for_backward(lambda: op(x, width=0.1))
    assert len(saved) == 1
    assert saved[0] is x or saved[0].data_ptr() == y.data_ptr()


TWO_INPUT_OPS = {
    "maximum": lambda v, **k: mol.maximum(v, 0.3, **k),
    "minimum": lambda v, **k: mol.minimum(0.3, v, **k),
    "where": lambda v, **k: mol.where(v, 2.0, -1.0, **k),
    "greater": lambda v, **k: mol.greater(v, 0.5, **k),
    "less": lambda v, **k: mol.less(v, 0.5, **k),
    "equal": lambda v, **k: mol.equal(v, 0.5, **k),
}


@pytest.mark.parametrize("name", TWO_INPUT_OPS)
def test_ops_of_two_inputs_save_one_tensor_and_compile_without_graph_breaks(name):
    """A number as the second input costs autograd nothing; the op is one node."""
    op = TWO_INPUT_OPS[name]
    x = torch.randn(1000, dtype=torch.float64, requires_grad=True)
    saved, _ = saved_for_backward(lambda: op(x, width=0.1))
    assert len(saved) == 1, name
    assert_compiled_matches_eager(lambda v: op(v, width=0.3), x[:50].detach().requires_grad_())


def test_two_input_ops_convert_integers_before_subtracting():
    """uint8 0 - 1 would wrap to 255, int8 100 - (-100) to -56."""
    np.testing.assert_allclose(mol.maximum(np.uint8([0]), np.uint8([1]), width=1e-3), [1.0])
    np.testing.assert_allclose(mol.minimum(np.int8([100]), np.int8([-100]), width=1e-3), [-100.0])
    np.testing.assert_allclose(mol.greater(np.uint8([1]), np.uint8([2]), width=1e-3), [0.0])
    big = np.float16([60000.0])
    assert mol.maximum(big, -big, width=0.1) == big  # the difference is taken in float32


def test_special_values_through_the_fast_path():
    x = torch.tensor([float("nan"), -float("inf"), float("inf"), 0.0], requires_grad=True)
    for op, expected in [
        (mol.relu, [float("nan"), 0.0, float("inf"), 0.1 * np.log(2)]),
        (mol.abs, [float("nan"), float("inf"), float("inf"), 0.2 * np.log(2)]),
        (mol.step, [float("nan"), 0.0, 1.0, 0.5]),
        (mol.sign, [float("nan"), -1.0, 1.0, 0.0]),
    ]:
        y = op(x, width=0.1)
        np.testing.assert_allclose(y.detach().numpy(), expected, rtol=1e-6)
        (grad,) = torch.autograd.grad(y.sum(), x)
        assert torch.isnan(grad[0]) and torch.all(torch.isfinite(grad[1:]))


@pytest.mark.parametrize("kernel", ["logistic", "gaussian", "laplace"])
def test_compile_fullgraph_matches_eager(kernel):
    def model(x):
        return mol.relu(x, width=0.2, kernel=kernel) + mol.sign(x, width=0.3, kernel=kernel)

    assert_compiled_matches_eager(model, torch.linspace(-2, 2, 33, requires_grad=True))


def test_autocast_and_half_inputs():
    layer = torch.nn.Linear(8, 8)
    x = torch.randn(4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = layer(x)
        out = mol.relu(hidden, width=0.1)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert layer.weight.grad is not None and torch.all(torch.isfinite(layer.weight.grad))
    half = torch.randn(16, dtype=torch.float16, requires_grad=True)
    y = mol.abs(half, width=0.1)
    y.sum().backward()
    assert y.dtype == torch.float16 and half.grad.dtype == torch.float16


def test_torch_func_transforms():
    x = torch.linspace(-1, 1, 5, dtype=torch.float64)
    per_row = torch.func.vmap(lambda v: mol.relu(v, width=0.5))(x.reshape(5, 1))
    torch.testing.assert_close(per_row.reshape(5), mol.relu(x, width=0.5))
    grad = torch.func.vmap(torch.func.grad(lambda v: mol.relu(v, width=0.5)))(x)
    torch.testing.assert_close(grad, mol.step(x, width=0.5))


@pytest.mark.parametrize("axis", [-1, 0, (0, 1)])
def test_softmax_fast_path_agrees_with_the_generic_path(axis):
    from mollifier._engine.lse import softmax_values

    torch.manual_seed(0)
    x = torch.randn(4, 5, dtype=torch.float64) * 3
    x[1, 2] = -float("inf")
    weights = torch.randn(4, 5, dtype=torch.float64)
    axes = axes_of(axis, 2)
    results = []
    for fn in (
        lambda v: mol.softmax(v, axis=axis, width=0.7),
        lambda v: softmax_values(BE, v, axes, 0.7),
    ):
        v = x.clone().requires_grad_(True)
        p = fn(v)
        (first,) = torch.autograd.grad((p * weights).sum(), v, create_graph=True)
        (second,) = torch.autograd.grad((first * weights).sum(), v)
        results.append((p.detach(), first.detach(), second))
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-15)


def test_softmax_saves_only_its_output():
    x = torch.randn(8, 16, requires_grad=True)
    saved, p = saved_for_backward(lambda: mol.softmax(x, width=0.5))
    assert len(saved) == 1 and saved[0].data_ptr() == p.data_ptr()


# -- staircases ------------------------------------------------------------------------
STAIRCASE_OPS = ["floor", "ceil", "round", "trunc", "frac"]
RULES = {op: getattr(stairs, op.upper()) for op in STAIRCASE_OPS}


def staircase(op: str, kernel: str, width: float, *, fast_path: bool):
    k = mol.get_kernel(kernel)
    if fast_path:
        f = stairs.formula(RULES[op], width, k)
        return lambda x: adapter.elementwise(BE, f, x)
    return lambda x: RULES[op][0](BE, x, width, k)


@pytest.mark.parametrize("op", STAIRCASE_OPS)
@pytest.mark.parametrize("kernel", sorted(mol.kernels))
@pytest.mark.parametrize("width", [0.05, 0.4, 2.5])  # direct sums, Fourier, Bernoulli forms
def test_staircase_fast_path_agrees_with_the_generic_path(op, kernel, width):
    # off the grid of kernel edges: compact kernels have kinks at r = +-w (mod 1)
    values = np.concatenate([np.linspace(-6, 6, 241) + 0.0123, [-1e6 + 0.3, 0.0, 0.5, 1e6 + 0.7]])
    for dtype in (torch.float32, torch.float64):
        x = torch.tensor(values, dtype=dtype)
        eps = torch.finfo(dtype).eps
        fast_results = derivatives(staircase(op, kernel, width, fast_path=True), x)
        generic_results = derivatives(staircase(op, kernel, width, fast_path=False), x)
        for order, (got, want) in enumerate(zip(fast_results, generic_results, strict=True)):
            assert torch.all(torch.isfinite(got))
            # a few ulps of the result's natural scale: |x| for the value, the wrapped
            # density's peak ~1/w for the slope (it is summed in another order)
            scale = torch.clamp(want.abs(), min=max(1.0, width**-order))
            error = (got - want).abs()
            assert torch.all(error <= 64 * eps * scale), (order, error.max())


@pytest.mark.parametrize("kernel", sorted(mol.kernels))
@pytest.mark.parametrize("width", [0.004, 0.05, 0.3, 1.0, 2.5])
def test_wrapped_density_against_mpmath(kernel, width):
    """``floor_w'`` (every form: direct, Fourier, Laplace's geometric sum, the Poisson
    kernel, Bernoulli polynomials) against the step-by-step sum of kernel densities."""
    from mollifier import _reference
    from mollifier._engine.staircase import _floor_slope, _round_slope

    x = np.array([-3.4567, -0.4987, -0.31, 0.0123, 0.27, 0.49, 12.875])  # off the kinks
    got = _floor_slope(_backend._numpy_backend(), x, width, mol.get_kernel(kernel))
    want = np.array([float(_reference.floor_slope(kernel, width, v)) for v in x])
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)
    # round_w(x) = floor_w(x + 1/2): its slope is the wrapped density half a period on
    got = _round_slope(_backend._numpy_backend(), x, width, mol.get_kernel(kernel))
    want = np.array([float(_reference.floor_slope(kernel, width, v + 0.5)) for v in x])
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("op", [mol.floor, mol.ceil, mol.round, mol.trunc, mol.frac])
def test_staircases_save_only_x(op):
    x = torch.randn(1000, requires_grad=True)
    saved, _ = saved_for_backward(lambda: op(x, width=0.1))
    assert len(saved) == 1 and saved[0] is x


def test_staircase_special_values():
    x = torch.tensor([float("nan"), -float("inf"), float("inf"), 2.5], requires_grad=True)
    y = mol.floor(x, width=0.1)
    np.testing.assert_allclose(y.detach().numpy(), [np.nan, -np.inf, np.inf, 2.0], rtol=1e-6)
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.isnan(grad[0]) and torch.all(torch.isfinite(grad[1:]))
    frac = mol.frac(x, width=0.1)
    (grad,) = torch.autograd.grad(frac.sum(), x)
    assert torch.isnan(frac[2]) and torch.isnan(grad[0]) and torch.all(torch.isfinite(grad[1:]))


@pytest.mark.parametrize("kernel", ["logistic", "gaussian", "epanechnikov"])
def test_staircase_compile_fullgraph_matches_eager(kernel):
    def model(x):
        return mol.floor(x, width=0.2, kernel=kernel) + mol.round(x, width=0.3, kernel=kernel)

    assert_compiled_matches_eager(model, torch.linspace(-3, 3, 37, requires_grad=True))


def test_staircase_under_torch_func():
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)
    grad = torch.func.vmap(torch.func.grad(lambda v: mol.floor(v, width=0.3)))(x)
    slope = torch.autograd.grad(mol.floor(x.requires_grad_(), width=0.3).sum(), x)[0]
    torch.testing.assert_close(grad, slope)


@pytest.mark.parametrize(
    "op",
    [
        lambda v: mol.floor(v, width=0.1),
        lambda v: mol.round(v, width=0.1, kernel="gaussian"),
        lambda v: mol.frac(v, width=0.2, kernel="laplace"),
        lambda v: mol.clip(v, -1.0, 1.0, width=0.1),
        lambda v: mol.step(v, width=0.1, kernel="gaussian"),
        lambda v: mol.sign(v, width=0.1, kernel="gaussian"),
    ],
)
def test_blocked_evaluation_matches_the_plain_formula(op, monkeypatch):
    """Large contiguous CPU tensors are evaluated in cache-sized blocks; a strided view
    of the same data (and a graph recorded for double backward) takes the plain call."""
    from mollifier._adapters import torch as torch_adapter

    calls = []
    original = torch_adapter._in_blocks

    def counting(fn, x):
        return original(lambda v: calls.append(v.numel()) or fn(v), x)

    monkeypatch.setattr(torch_adapter, "_in_blocks", counting)
    torch.manual_seed(0)
    n = 4 * 2**18 + 12345  # four 1 MB float32 blocks and a partial one
    x = (torch.randn(n) * 5).requires_grad_(True)
    strided = torch.stack([x, x], dim=1)[:, 0]
    blocked = op(x)
    assert calls == [2**18] * 4 + [12345]
    plain = op(strided)
    torch.testing.assert_close(blocked, plain, rtol=4e-7, atol=4e-7)
    (grad_blocked,) = torch.autograd.grad(blocked.sum(), x)
    (grad_plain,) = torch.autograd.grad(op(x).sum(), x, create_graph=True)
    torch.testing.assert_close(grad_blocked, grad_plain.detach(), rtol=4e-7, atol=4e-6)


@pytest.mark.parametrize("axis", [-1, 0, (0, 1), None])
def test_logsumexp_fast_path_agrees_with_the_generic_path(axis):
    from mollifier._engine.lse import logsumexp_values

    torch.manual_seed(0)
    x = torch.randn(4, 5, dtype=torch.float64) * 3
    x[1, 2] = -float("inf")
    x[3, :] = -float("inf")  # an all -inf row: -inf, zero gradient
    weights = torch.randn(4, 5, dtype=torch.float64)
    axes = axes_of(axis, 2)
    results = []
    for fn in (
        lambda v: mol.logsumexp(v, axis=axis, width=0.7, keepdims=True),
        lambda v: logsumexp_values(BE, v, axes, 0.7),
    ):
        v = x.clone().requires_grad_(True)
        out = fn(v)
        finite = torch.where(torch.isfinite(out), out, 0.0)
        (first,) = torch.autograd.grad(finite.sum(), v, create_graph=True)
        (second,) = torch.autograd.grad((first * weights).sum(), v)
        results.append((out.detach(), first.detach(), second))
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-15)


def test_logsumexp_saves_only_x():
    x = torch.randn(8, 16, requires_grad=True)
    saved, _ = saved_for_backward(lambda: mol.logsumexp(x, width=0.5))
    assert len(saved) == 1 and saved[0] is x


@pytest.mark.parametrize("op", [mol.softmax, mol.logsumexp])
def test_row_blocked_reductions_match_the_plain_formula(op, monkeypatch):
    from mollifier._adapters import torch as torch_adapter

    rows = []
    original = torch_adapter._in_row_blocks

    def counting(fn, x, axes):
        return original(lambda v, a: rows.append(v.shape[0]) or fn(v, a), x, axes)

    monkeypatch.setattr(torch_adapter, "_in_row_blocks", counting)
    torch.manual_seed(0)
    x = torch.randn(4 * 873 + 17, 300, requires_grad=True)  # 873 rows of 300 make 1 MB
    blocked = op(x, width=0.1)
    assert rows == [873] * 4 + [17]
    plain = op(x.t().contiguous().t(), width=0.1)  # a transposed copy is not blockable
    torch.testing.assert_close(blocked, plain, rtol=4e-7, atol=1e-7)
    weights = torch.randn_like(blocked)
    (grad_blocked,) = torch.autograd.grad((blocked * weights).sum(), x)
    (grad_plain,) = torch.autograd.grad((plain * weights).sum(), x)
    # p (g - sum g p) / w cancels: a few ulps of |g| / w = 30 absolute
    torch.testing.assert_close(grad_blocked, grad_plain, rtol=1e-5, atol=3e-5)


@pytest.mark.parametrize("kernel", sorted(mol.kernels))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gate_fast_path_agrees_with_the_generic_path(kernel, dtype):
    """GELU/swish ``x K(x/w)``: one node saving x, slope K(t) + t k(t) in closed form."""
    k = mol.get_kernel(kernel)
    width = 0.7
    x = torch.tensor(
        np.concatenate([np.linspace(-6, 6, 241) + 0.0123, [-1e6, 0.0, 1e6]]), dtype=dtype
    )
    eps = torch.finfo(dtype).eps
    fast_results = derivatives(lambda v: adapter.elementwise(BE, gate.gate(width, k), v), x)
    generic_results = derivatives(lambda v: k._gate(BE, v, width), x)
    for order, (got, want) in enumerate(zip(fast_results, generic_results, strict=True)):
        assert torch.all(torch.isfinite(got))
        finite = torch.isfinite(want)
        scale = torch.clamp(want.abs(), min=width**-order)
        error = (got - want).abs()[finite]
        assert torch.all(error <= 64 * eps * scale[finite]), (order, error.max())


@pytest.mark.parametrize("op", [mol.gelu, mol.swish])
def test_gates_save_only_x_and_handle_special_values(op):
    x = torch.tensor([float("nan"), -float("inf"), float("inf"), 1.0], requires_grad=True)
    saved, y = saved_for_backward(lambda: op(x))
    assert len(saved) == 1 and saved[0] is x
    assert torch.isnan(y[0]) and y[1] == 0.0 and y[2] == float("inf")
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.isnan(grad[0]) and grad[1] == 0.0 and grad[2] == 1.0


@pytest.mark.parametrize(
    "op",
    [
        lambda v: mol.floor(v, width=0.3),
        lambda v: mol.round(v, width=0.2, kernel="uniform"),
        lambda v: mol.relu(v, width=0.3, kernel="gaussian"),
        lambda v: mol.step(v, width=0.3),
        lambda v: mol.sign(v, width=0.3, kernel="cauchy"),
        lambda v: mol.clip(v, -1.0, 1.0, width=0.3, kernel="laplace"),
        lambda v: mol.gelu(v),
    ],
)
# torch's forward AD loads its decompositions through torch.jit.script on first use
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_elementwise_nodes_support_forward_mode(op):
    """jvp (forward mode) is the slope times the tangent: torch.func.jvp, jacfwd and
    hessian agree with reverse mode, and forward-AD dual tensors carry the tangent,
    at a size the eager bit forms would take (they step aside under a dual level)."""
    x = torch.linspace(-2.5, 2.5, 1 << 15, dtype=torch.float64)
    tangent = torch.cos(x)
    _, forward = torch.func.jvp(op, (x,), (tangent,))
    xg = x.clone().requires_grad_(True)
    (reverse,) = torch.autograd.grad(op(xg), xg, tangent)
    torch.testing.assert_close(forward, reverse, rtol=0, atol=0)
    with torch.autograd.forward_ad.dual_level():
        dual = torch.autograd.forward_ad.make_dual(x, tangent)
        carried = torch.autograd.forward_ad.unpack_dual(op(dual)).tangent
    torch.testing.assert_close(carried, reverse, rtol=0, atol=0)
    small = x[::4096]
    torch.testing.assert_close(torch.func.jacfwd(op)(small), torch.func.jacrev(op)(small))
    total = lambda v: op(v).sum()  # noqa: E731
    torch.testing.assert_close(
        torch.func.hessian(total)(small), torch.func.jacrev(torch.func.jacrev(total))(small)
    )
