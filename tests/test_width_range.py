"""Staircases over a declared width range: the term count of the widest width, so the
width may be an array (annealed inside torch.compile, learned by an nn module)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch._dynamo.testing import CompileCounter

import mollifier as mol
from mollifier import nn as mnn
from mollifier._catalogue import CATALOGUE

POINTS = np.array([-2.37, -0.5, -0.013, 0.0, 0.26, 0.5, 0.74, 1.999, 3.4])
RANGE = (0.02, 0.5)


@pytest.mark.parametrize("kernel", ["gaussian", "logistic", "laplace", "epanechnikov"])
@pytest.mark.parametrize("name", ["floor", "ceil", "round", "trunc", "frac"])
def test_accurate_over_the_whole_range_against_mpmath(kernel, name):
    op = CATALOGUE[name]
    for width in (RANGE[0], 0.13, RANGE[1]):  # both ends and between
        w = torch.tensor(width, dtype=torch.float64)
        got = op.smooth(torch.tensor(POINTS), width=w, width_range=RANGE, kernel=kernel)
        want = [float(op.reference(kernel, width, float(x))) for x in POINTS]
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=4e-15)


def test_width_gradient_of_an_array_width():
    # the width is differentiable: against central differences of the Python-float op
    x = torch.tensor(POINTS)
    for name in ("floor", "round", "frac"):
        op = CATALOGUE[name]
        w = torch.tensor(0.21, dtype=torch.float64, requires_grad=True)
        out = op.smooth(x, width=w, width_range=RANGE, kernel="gaussian")
        (grad,) = torch.autograd.grad(out.sum(), w)
        h = 1e-6
        plus = op.smooth(x, width=0.21 + h, kernel="gaussian").sum()
        minus = op.smooth(x, width=0.21 - h, kernel="gaussian").sum()
        assert float(grad) == pytest.approx(float(plus - minus) / (2 * h), rel=1e-6, abs=1e-9)


def test_quantize_range_is_in_units_of_x():
    x = torch.linspace(-1.0, 1.0, 41, dtype=torch.float64)
    w = torch.tensor([0.01, 0.03, 0.1], dtype=torch.float64).reshape(3, 1)  # one per row
    got = mol.quantize(x, 0.25, 0.1, width=w, width_range=(0.005, 0.1), kernel="gaussian")
    for row, width in zip(got, (0.01, 0.03, 0.1)):
        want = mol.quantize(x, 0.25, 0.1, width=width, kernel="gaussian")
        torch.testing.assert_close(row, want, rtol=0, atol=1e-14)


def test_numpy_and_jax_take_the_range_too():
    import jax
    import jax.numpy as jnp

    x = np.linspace(-2.1, 2.3, 17)
    want = mol.round(x, width=0.3, kernel="logistic")
    got = mol.round(x, width=np.asarray(0.3), width_range=RANGE, kernel="logistic")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-14)
    f = jax.jit(lambda v, w: mol.round(v, width=w, width_range=RANGE, kernel="logistic"))
    np.testing.assert_allclose(f(jnp.asarray(x), jnp.asarray(0.3)), want, rtol=0, atol=1e-14)


def test_refusals_name_the_argument():
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="width_range: the cauchy kernel's staircase"):
        mol.floor(x, width=torch.tensor(0.1), width_range=RANGE, kernel="cauchy")
    with pytest.raises(ValueError, match=r"width must lie in width_range=\(0.02, 0.5\)"):
        mol.floor(x, width=0.6, width_range=RANGE)
    with pytest.raises(ValueError, match=r"width must lie in width_range"):
        mol.floor(x, width=torch.tensor([0.1, 0.7]), width_range=RANGE)
    with pytest.raises(ValueError, match="lowest < widest"):
        mol.floor(x, width=0.1, width_range=(0.5, 0.1))
    with pytest.raises(TypeError, match="width_range must be a pair"):
        mol.floor(x, width=0.1, width_range=0.5)
    with pytest.raises(TypeError, match="width= as a Python number"):  # no range: as before
        mol.floor(x, width=torch.tensor(0.1))
    with pytest.raises(ValueError, match="cannot learn its width"):
        mnn.SmoothFloor(learnable_width=True)


def test_learnable_staircase_width_trains_and_stays_in_range():
    torch.manual_seed(0)
    quantizer = mnn.SmoothQuantize(
        0.25, width=0.05, width_range=(0.005, 0.1), learnable_width=True, kernel="gaussian"
    )
    x = torch.randn(256, dtype=torch.float64)
    target = torch.round(x / 0.25) * 0.25
    quantizer.double()
    optimizer = torch.optim.Adam(quantizer.parameters(), lr=0.05)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = ((quantizer(x) - target) ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]  # a narrower width fits the hard quantizer better
    assert 0.005 <= float(quantizer._width_for(x).detach()) <= 0.1
    assert "width_range=(0.005, 0.1)" in repr(quantizer)
    with pytest.raises(ValueError, match="width must lie in width_range"):
        mnn.SmoothRound(width=0.3, width_range=RANGE).set_width(0.9)


def test_annealed_and_learned_staircases_compile_once():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 3),
        mnn.SmoothFloor(width=0.5, width_range=RANGE, kernel="gaussian"),
        mnn.SmoothRound(width=0.5, width_range=RANGE),
        mnn.SmoothQuantize(0.25, width=0.05, width_range=(0.005, 0.1), learnable_width=True),
    ).double()
    counter = CompileCounter()
    compiled = torch.compile(model, backend=counter, fullgraph=True, dynamic=True)
    schedule = mnn.WidthSchedule("exponential", start=0.5, end=0.02, steps=6)
    for step in range(6):
        schedule.apply(model, step)
        x = torch.randn(2 + step % 3, 3, dtype=torch.float64)
        torch.testing.assert_close(compiled(x), model(x))
        compiled(x).sum().backward()
    assert counter.frame_count == 1
