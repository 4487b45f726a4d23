"""mollifier.nn: modules, learnable widths, straight-through, schedules, the example."""

import importlib.util
import itertools
import math
import pathlib

import numpy as np
import pytest
import torch

import mollifier as mol
from mollifier import nn as mnn

X = torch.linspace(-2.5, 2.5, 41, dtype=torch.float64)

MODULES = [
    (lambda **k: mnn.SmoothStep(**k), lambda x, **k: mol.step(x, **k), lambda x: (x >= 0).double()),
    (lambda **k: mnn.SmoothSign(**k), lambda x, **k: mol.sign(x, **k), torch.sign),
    (lambda **k: mnn.SmoothReLU(**k), lambda x, **k: mol.relu(x, **k), torch.relu),
    (lambda **k: mnn.SmoothAbs(**k), lambda x, **k: mol.abs(x, **k), torch.abs),
    (lambda **k: mnn.SmoothClip(-1.0, 1.0, **k), lambda x, **k: mol.clip(x, -1.0, 1.0, **k),
     lambda x: torch.clamp(x, -1.0, 1.0)),
    (lambda **k: mnn.SmoothHinge(0.5, **k), lambda x, **k: mol.hinge(x, 0.5, **k),
     lambda x: torch.relu(0.5 - x)),
    (lambda **k: mnn.SmoothLeakyReLU(0.2, **k), lambda x, **k: mol.leaky_relu(x, 0.2, **k),
     lambda x: torch.where(x >= 0, x, 0.2 * x)),
    (lambda **k: mnn.SmoothGELU(**k), lambda x, **k: mol.gelu(x, **k), torch.relu),
    (lambda **k: mnn.SmoothSwish(**k), lambda x, **k: mol.swish(x, **k), torch.relu),
    (lambda **k: mnn.SmoothFloor(**k), lambda x, **k: mol.floor(x, **k), torch.floor),
    (lambda **k: mnn.SmoothTrunc(**k), lambda x, **k: mol.trunc(x, **k), torch.trunc),
    (lambda **k: mnn.SmoothFrac(**k), lambda x, **k: mol.frac(x, **k), lambda x: x - torch.floor(x)),
    (lambda **k: mnn.SmoothCeil(**k), lambda x, **k: mol.ceil(x, **k), torch.ceil),
    (lambda **k: mnn.SmoothRound(**k), lambda x, **k: mol.round(x, **k), torch.round),
    (lambda **k: mnn.SmoothQuantize(0.25, **k), lambda x, **k: mol.quantize(x, 0.25, **k),
     lambda x: torch.round(x / 0.25) * 0.25),
]  # fmt: skip


@pytest.mark.parametrize("index", range(len(MODULES)))
def test_module_matches_the_function_and_straight_through_is_exact(index):
    make, fn, hard = MODULES[index]
    module = make(width=0.3, kernel="gaussian").double()
    # the width is stored as softplus(raw) in the default dtype: compare at that value
    width = float(module.width)
    assert width == pytest.approx(0.3, rel=1e-7)
    np.testing.assert_allclose(
        module(X).detach(), fn(X, width=width, kernel="gaussian"), rtol=1e-12
    )
    st = make(width=0.3, kernel="gaussian", straight_through=True).double()
    x = X.clone().requires_grad_(True)
    out = st(x)
    assert torch.equal(out.detach(), hard(X))
    (grad,) = torch.autograd.grad(out.sum(), x)
    (smooth_grad,) = torch.autograd.grad(module(x).sum(), x)
    torch.testing.assert_close(grad, smooth_grad)
    module.hard = True
    assert torch.equal(module(X), hard(X))
    assert "kernel=gaussian" in repr(module) and "width=0.3" in repr(module)


def test_learnable_per_channel_width_trains_and_stays_positive():
    torch.manual_seed(0)
    module = mnn.SmoothReLU(width=0.5, learnable_width=True, per_channel=3, dim=1)
    x = torch.randn(8, 3, 4)
    optimizer = torch.optim.SGD(module.parameters(), lr=2.0)
    for _ in range(30):  # steps that push the raw width below zero: the width stays positive
        optimizer.zero_grad()
        module(x).sum().backward()
        optimizer.step()
    assert torch.all(module.raw_width < 0) and torch.all(module.width > 0)
    assert module.width.shape == (3,)
    with pytest.raises(ValueError, match="per_channel=3 but the input has 5 channels"):
        module(torch.randn(2, 5))


def test_sau_is_gaussian_smoothed_leaky_relu_with_learnable_slope_and_width():
    sau = mnn.SAU(0.1, width=0.7).double()
    expected = mol.leaky_relu(X, 0.1, kernel="gaussian", width=0.7)
    torch.testing.assert_close(sau(X), expected)
    sau(X).sum().backward()
    assert sau.negative_slope.grad is not None and sau.raw_width.grad is not None
    hard = mnn.SAU(0.1, width=0.7, straight_through=True).double()
    slope = hard.negative_slope.detach()
    assert torch.equal(hard(X).detach(), torch.where(X >= 0, X, slope * X))


def test_state_dict_round_trip_and_compile():
    module = mnn.SmoothClip(-1.0, 2.0, width=0.2, learnable_width=True, per_channel=4)
    other = mnn.SmoothClip(-1.0, 2.0, width=0.9, learnable_width=True, per_channel=4)
    other.load_state_dict(module.state_dict())
    x = torch.randn(3, 4)
    torch.testing.assert_close(other(x), module(x))
    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True)
    torch.testing.assert_close(compiled(x), module(x))


def test_reduction_modules():
    x = torch.randn(5, 7, dtype=torch.float64)
    torch.testing.assert_close(mnn.SmoothMax(dim=-1, width=0.2).double()(x), mol.max(x, width=0.2))
    torch.testing.assert_close(
        mnn.SmoothMax(dim=0, method="softmax", width=0.2).double()(x),
        mol.max(x, axis=0, width=0.2, method="softmax"),
    )
    torch.testing.assert_close(mnn.SmoothSoftmax(width=0.5).double()(x), mol.softmax(x, width=0.5))
    w = float(mnn.SmoothMin(width=0.5).width)
    torch.testing.assert_close(mnn.SmoothMin(width=0.5).double()(x), mol.min(x, width=w))
    torch.testing.assert_close(
        mnn.SmoothLogSumExp(dim=0, width=0.5).double()(x), mol.logsumexp(x, axis=0, width=w)
    )
    torch.testing.assert_close(
        mnn.SmoothArgmax(index=True, width=0.5).double()(x), mol.argmax(x, width=w, index=True)
    )
    torch.testing.assert_close(
        mnn.SmoothNorm(ord=1, width=0.5).double()(x), mol.norm(x, ord=1, width=w)
    )
    st = mnn.SmoothMax(width=0.5, straight_through=True).double()
    assert torch.equal(st(x), x.max(dim=-1).values)
    with pytest.raises(ValueError, match="ord"):
        mnn.SmoothNorm(ord=-1, width=0.1)
    with pytest.raises(ValueError, match="per_channel"):
        mnn.SmoothSoftmax(width=0.1, per_channel=3)


def test_bad_arguments_fail_at_construction():
    with pytest.raises(ValueError, match="width"):
        mnn.SmoothReLU(width=0.0)
    with pytest.raises(ValueError, match="width"):
        mnn.SmoothReLU(width=-1.0)
    with pytest.raises(ValueError, match="kernel must be one of"):
        mnn.SmoothReLU(width=0.1, kernel="gauss")
    with pytest.raises(ValueError, match="per_channel"):
        mnn.SmoothReLU(width=0.1, per_channel=0)
    with pytest.raises(ValueError, match="cannot learn its width"):
        mnn.SmoothRound(width=0.1, learnable_width=True)
    with pytest.raises(ValueError, match="lower < upper"):
        mnn.SmoothClip(1.0, 0.0, width=0.1)
    with pytest.raises(ValueError, match="method"):
        mnn.SmoothMax(width=0.1, method="median")


def test_schedules():
    for kind in mnn.WidthSchedule.KINDS:
        s = mnn.WidthSchedule(kind, start=1.0, end=0.01, steps=10)
        values = [s(k) for k in range(12)]
        assert values[0] == 1.0
        if kind != "constant":
            assert values[10] == pytest.approx(0.01) and values[11] == pytest.approx(0.01)
            assert all(a >= b for a, b in itertools.pairwise(values))
    assert mnn.WidthSchedule("cosine", start=1.0, end=0.0 + 1e-9, steps=2)(1) == pytest.approx(0.5)
    model = torch.nn.Sequential(
        mnn.SmoothReLU(width=1.0), torch.nn.Linear(2, 2), mnn.SmoothFloor(width=1.0)
    )
    value = mnn.WidthSchedule("linear", start=0.5, end=0.1, steps=4).apply(model, 2)
    assert value == pytest.approx(0.3)
    assert all(float(m.width) == pytest.approx(0.3) for m in mnn.smooth_modules(model))
    mnn.harden(model)
    assert all(m.hard for m in mnn.smooth_modules(model))
    with pytest.raises(ValueError, match="kind"):
        mnn.WidthSchedule("step", start=1.0)


def test_digits_example_shortened():
    path = pathlib.Path(__file__).parent.parent / "examples" / "digits_quantized.py"
    spec = importlib.util.spec_from_file_location("digits_quantized", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    for regime in ("ste", "smooth", "annealed"):
        accuracy = example.run(regime, seed=0, steps=40)
        # ten classes: chance is 0.1; 40 full-batch steps already reach far above it
        assert 0.6 < accuracy <= 1.0, (regime, accuracy)
    assert math.isfinite(accuracy)


def test_docs_examples_run():
    import re

    text = (pathlib.Path(__file__).parent.parent / "docs" / "examples.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, "docs/examples.md", "exec"), {})
