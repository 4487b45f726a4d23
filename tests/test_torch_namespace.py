"""The torch namespace's eager CPU forms: ``where`` selected by bits and ``isfinite`` as
``|x| < inf`` are torch's own results bit for bit, and step aside wherever they cannot
apply (a graph being recorded, ``torch.func``, a trace, small or non-float tensors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mollifier as mol
from mollifier import _backend
from mollifier._backend import backend_of

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
SIZE = 1 << 15  # above _FAST_SELECT_MIN


def _special(dtype: torch.dtype, size: int, seed: int) -> torch.Tensor:
    """Random values with every special one mixed in: ±0, ±inf, NaN, subnormals, ±max."""
    finfo = torch.finfo(dtype)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(size, generator=g, dtype=torch.float64).to(dtype)
    specials = torch.tensor(
        [0.0, -0.0, np.inf, -np.inf, np.nan, finfo.max, -finfo.max, finfo.tiny / 4, -finfo.tiny],
        dtype=dtype,
    )
    picks = torch.randint(0, size, (size // 8,), generator=g)
    x[picks] = specials[torch.randint(0, len(specials), (size // 8,), generator=g)]
    return x


def _bits(t: torch.Tensor) -> torch.Tensor:
    ints = {2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()]
    return t.contiguous().view(ints)


@pytest.mark.parametrize("dtype", DTYPES)
def test_where_selects_bit_for_bit(dtype):
    xp = backend_of(torch.zeros(1)).xp
    yes, no = _special(dtype, SIZE, 1), _special(dtype, SIZE, 2)
    condition = torch.rand(SIZE, generator=torch.Generator().manual_seed(3)) < 0.5
    cases = [
        (condition, yes, no),
        (condition, yes, 0.0),  # a Python number on either side
        (condition, -1.5, no),
        (condition, yes, torch.tensor(np.inf, dtype=dtype)),  # a 0-d tensor
        (condition.reshape(2, -1), yes.reshape(2, -1), no[: SIZE // 2]),  # broadcast
        (condition[::2], yes[::2], no[1::2]),  # strided views
    ]
    for args in cases:
        got, want = xp.where(*args), torch.where(*args)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert torch.equal(_bits(got), _bits(want))


def test_where_steps_aside_where_bits_cannot_serve():
    xp = backend_of(torch.zeros(1)).xp
    condition = torch.rand(SIZE) < 0.5
    a = torch.randn(SIZE, requires_grad=True)
    b = torch.randn(SIZE)
    out = xp.where(condition, a, b)  # a graph is recorded: torch.where, differentiable
    out.sum().backward()
    assert torch.equal(a.grad, condition.to(a.dtype))
    ints = torch.arange(SIZE)
    assert torch.equal(xp.where(condition, ints, 0), torch.where(condition, ints, 0))
    mixed = xp.where(condition, b, b.double())  # promotion: torch's rule
    assert mixed.dtype == torch.float64
    batched = torch.func.vmap(lambda c, y: xp.where(c, y, 0.0))(
        condition.reshape(4, -1), b.reshape(4, -1)
    )
    assert torch.equal(batched.reshape(-1), torch.where(condition, b, 0.0))
    compiled = torch.compile(lambda c, y: xp.where(c, y, -y), fullgraph=True)
    assert torch.equal(compiled(condition, b), torch.where(condition, b, -b))


@pytest.mark.parametrize("dtype", DTYPES)
def test_isfinite_is_torchs(dtype):
    xp = backend_of(torch.zeros(1)).xp
    x = _special(dtype, SIZE, 4)
    assert torch.equal(xp.isfinite(x), torch.isfinite(x))
    assert torch.equal(xp.isfinite(torch.arange(SIZE)), torch.ones(SIZE, dtype=torch.bool))


@pytest.mark.parametrize("kernel", ["cauchy", "sqrt", "laplace", "uniform", "gaussian"])
def test_formulas_on_large_tensors_are_unchanged_by_the_bit_forms(monkeypatch, kernel):
    """Generic and fused formulas over 2^17 entries (blocks, the bit forms and the
    float masks all in play) equal the plain torch kernels' results bit for bit."""
    x = _special(torch.float32, 1 << 17, 5).clamp(-1e30, 1e30) * 1.0
    x[:9] = torch.tensor([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -3.0, 0.05, 2.5])
    ops = [
        lambda v: mol.step(v, width=0.1, kernel=kernel),
        lambda v: mol.clip(v, -1.0, 1.0, width=0.1, kernel=kernel),
        lambda v: mol.floor(v, width=0.3, kernel=kernel),
    ]

    def run(op):
        xg = x.clone().requires_grad_(True)
        y = op(xg)
        (g,) = torch.autograd.grad(y.sum(), xg)
        return y.detach(), g

    for op in ops:
        fast = run(op)
        with monkeypatch.context() as patch:
            patch.setattr(_backend, "_FAST_SELECT_MIN", 1 << 62)
            plain = run(op)
        for got, want in zip(fast, plain, strict=True):
            assert torch.equal(_bits(got), _bits(want))
