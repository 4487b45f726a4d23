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
    assert len(blocks) == 3
    for block in blocks:
        exec(compile(block, "docs/examples.md", "exec"), {})


LEARNABLE = {
    "SmoothStep": lambda **k: mnn.SmoothStep(**k),
    "SmoothSign": lambda **k: mnn.SmoothSign(**k),
    "SmoothReLU": lambda **k: mnn.SmoothReLU(**k),
    "SmoothAbs": lambda **k: mnn.SmoothAbs(**k),
    "SmoothClip": lambda **k: mnn.SmoothClip(-1.0, 1.0, **k),
    "SmoothHinge": lambda **k: mnn.SmoothHinge(**k),
    "SmoothLeakyReLU": lambda **k: mnn.SmoothLeakyReLU(**k),
    "SmoothGELU": lambda **k: mnn.SmoothGELU(**k),
    "SmoothSwish": lambda **k: mnn.SmoothSwish(**k),
    "SmoothMax": lambda **k: mnn.SmoothMax(**k),
    "SmoothMin": lambda **k: mnn.SmoothMin(**k),
    "SmoothLogSumExp": lambda **k: mnn.SmoothLogSumExp(**k),
    "SmoothSoftmax": lambda **k: mnn.SmoothSoftmax(**k),
    "SmoothArgmax": lambda **k: mnn.SmoothArgmax(**k),
    "SmoothNorm": lambda **k: mnn.SmoothNorm(**k),
    "SAU": lambda **k: mnn.SAU(**k),
}


@pytest.mark.parametrize("name", sorted(LEARNABLE))
@pytest.mark.parametrize(
    ("optimizer", "lr"), [("sgd", 1.0), ("sgd", 10.0), ("adam", 1.0), ("adam", 10.0)]
)
@pytest.mark.parametrize("loss", ["sum", "mse"])
def test_a_learnable_width_stays_above_its_floor(name, optimizer, lr, loss):
    # before the floor, large steps drove the width to ~1e-37 in two steps, then NaN, then
    # a ValueError at the next forward
    torch.manual_seed(0)
    module = LEARNABLE[name](width=0.5, learnable_width=True)
    assert float(module.min_width) == pytest.approx(0.5 * mnn.MIN_WIDTH_FRACTION)
    make = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    parameters = [module.raw_width]  # the width alone: SAU's slope is a free linear parameter
    step = make(parameters, lr=lr)
    x = torch.randn(16, 8) * 3
    target = torch.randn(module(x).shape)
    for _ in range(12):
        step.zero_grad()
        out = module(x)
        value = out.sum() if loss == "sum" else ((out - target) ** 2).mean()
        value.backward()
        assert torch.isfinite(module.raw_width.grad).all()
        step.step()
        assert torch.isfinite(module.raw_width).all()
        assert float(module.width.detach().min()) >= float(module.min_width) > 0
    assert torch.isfinite(module(x)).all()


@pytest.mark.parametrize(("optimizer", "lr"), [("sgd", 1.0), ("adam", 1.0), ("adam", 10.0)])
def test_sau_trains_stably_at_large_learning_rates(optimizer, lr):
    torch.manual_seed(0)
    sau = mnn.SAU()
    make = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    step = make(sau.parameters(), lr=lr)
    x, target = torch.randn(64, 16), torch.randn(64, 16)
    for _ in range(50):
        step.zero_grad()
        loss = ((sau(x) - target) ** 2).mean()
        assert torch.isfinite(loss)
        loss.backward()
        step.step()
        assert float(sau.width.detach()) >= float(sau.min_width) > 0
    assert abs(float(sau.negative_slope.detach())) < 10
    # SGD at lr = 10 exceeds 2 / curvature of this quadratic in the slope: every linear
    # parameter diverges there (torch.nn.PReLU too); the width still keeps its floor
    sau = mnn.SAU()
    step = torch.optim.SGD(sau.parameters(), lr=10.0)
    for _ in range(5):
        step.zero_grad()
        ((sau(x) - target) ** 2).mean().backward()
        step.step()
        assert torch.isfinite(sau.negative_slope) and float(sau.width.detach()) >= float(
            sau.min_width
        )


def test_min_width():
    module = mnn.SmoothReLU(width=0.5, learnable_width=True, min_width=0.1)
    assert float(module.width.detach()) == pytest.approx(0.5) and float(
        module.min_width
    ) == pytest.approx(0.1)
    with torch.no_grad():
        module.raw_width.fill_(-1e4)  # as far down as any step can push it
    assert float(module.width.detach()) == pytest.approx(0.1)
    assert float(mnn.SmoothReLU(width=0.5).min_width) == 0.0  # a fixed width has no floor
    with pytest.raises(ValueError, match="min_width must be >= 0 and below the width"):
        mnn.SmoothReLU(width=0.1, min_width=0.1)
    with pytest.raises(ValueError, match="min_width must be >= 0"):
        mnn.SmoothReLU(width=0.1, min_width=-1.0)
    with pytest.raises(TypeError, match="min_width must be a real number"):
        mnn.SmoothReLU(width=0.1, min_width="0")
    with pytest.raises(ValueError, match="width must be above min_width=0.1"):
        module.set_width(0.05)
    module.set_width(0.3)
    assert float(module.width.detach()) == pytest.approx(0.3)
    # the floor travels with state_dict
    other = mnn.SmoothReLU(width=2.0, learnable_width=True)
    other.load_state_dict(module.state_dict())
    assert float(other.min_width) == pytest.approx(0.1) and float(
        other.width.detach()
    ) == pytest.approx(0.3)


def test_schedules_leave_learnable_and_per_channel_widths_alone():
    learned = mnn.SmoothReLU(width=0.5, learnable_width=True, per_channel=4)
    with torch.no_grad():
        learned.raw_width.copy_(torch.tensor([-1.0, 0.0, 1.0, 2.0]))
    before = learned.width.detach().clone()
    per_channel = mnn.SmoothReLU(width=0.7, per_channel=2)
    scalar_learned = mnn.SAU(width=0.9)
    fixed = mnn.SmoothFloor(width=1.0)
    model = torch.nn.Sequential(learned, per_channel, scalar_learned, fixed)
    assert mnn.WidthSchedule("linear", start=0.5, end=0.1, steps=4).apply(model, 2) == 0.3
    torch.testing.assert_close(learned.width.detach(), before)
    torch.testing.assert_close(per_channel.width, torch.full((2,), 0.7))
    assert float(scalar_learned.width.detach()) == pytest.approx(0.9)
    assert float(fixed.width) == pytest.approx(0.3)
    mnn.set_width(model, 0.2)
    torch.testing.assert_close(learned.width.detach(), before)
    assert float(fixed.width) == pytest.approx(0.2)
    assert [mnn.scheduled(m) for m in model] == [False, False, False, True]
    learned.set_width(0.25)  # a module's own set_width still sets every entry
    torch.testing.assert_close(learned.width.detach(), torch.full((4,), 0.25))


def test_repr_of_per_channel_widths():
    module = mnn.SmoothReLU(width=0.2, per_channel=64)
    assert "width=per_channel" not in repr(module)
    assert "width=0.2, per_channel=64, dim=1" in repr(module)
    learned = mnn.SmoothReLU(width=0.5, learnable_width=True, per_channel=4)
    with torch.no_grad():
        learned.raw_width.copy_(torch.tensor([-1.0, 0.0, 1.0, 2.0]))
    text = repr(learned)
    assert "width=[0.3138, 0.6936, 1.314, 2.127], per_channel=4" in text
    assert "learnable_width=True, min_width=0.0005" in text
    many = mnn.SmoothReLU(width=0.5, learnable_width=True, per_channel=10)
    with torch.no_grad():
        many.raw_width.copy_(torch.arange(10.0))
    assert ", ..., " in repr(many)


@pytest.mark.parametrize("flag", ["learnable_width", "straight_through"])
@pytest.mark.parametrize("bad", ["no", 1, 0, None])
def test_module_flags_take_only_bools(flag, bad):
    for make in LEARNABLE.values():
        with pytest.raises(TypeError, match=f"{flag} must be True or False"):
            make(width=0.5, **{flag: bad})
    assert mnn.SmoothReLU(**{flag: np.bool_(True)}).__dict__[flag] is True


def test_other_module_flags_take_only_bools():
    with pytest.raises(TypeError, match="index must be True or False"):
        mnn.SmoothArgmax(index="no")
    with pytest.raises(TypeError, match="learnable_slope must be True or False"):
        mnn.SAU(learnable_slope="no")
    module = mnn.SmoothReLU()
    with pytest.raises(TypeError, match="hard must be True or False"):
        module.hard = "no"
    with pytest.raises(TypeError, match="hard must be True or False"):
        mnn.harden(module, 1)
    assert module.hard is False
    with pytest.raises(TypeError, match="per_channel must be a positive int"):
        mnn.SmoothReLU(per_channel=True)


@pytest.mark.parametrize(
    "make",
    [
        lambda: mnn.SmoothReLU(kernel="cauchy"),
        lambda: mnn.SmoothAbs(kernel="cauchy"),
        lambda: mnn.SmoothHinge(kernel="cauchy"),
        lambda: mnn.SmoothLeakyReLU(0.2, kernel="cauchy"),
        lambda: mnn.SAU(kernel="cauchy"),
        lambda: mnn.SmoothNorm(ord=2, kernel="cauchy"),
        lambda: mnn.SmoothReLU(kernel="cauchy", per_channel=3, learnable_width=True),
    ],
)
def test_inadmissible_kernels_raise_at_construction(make):
    with pytest.raises(ValueError, match="kernel='cauchy' diverges"):
        make()


def test_admissible_kernels_construct():
    for make in (
        lambda: mnn.SmoothStep(kernel="cauchy"),
        lambda: mnn.SmoothClip(-1.0, 1.0, kernel="cauchy"),
        lambda: mnn.SmoothFloor(kernel="cauchy"),
        lambda: mnn.SmoothNorm(ord=0, kernel="cauchy"),
        lambda: mnn.SmoothLeakyReLU(1.0, kernel="cauchy"),
        lambda: mnn.SmoothMax(dim=2),
    ):
        make()


def test_kernel_less_reductions_refuse_a_kernel():
    for module in (mnn.SmoothMax, mnn.SmoothMin, mnn.SmoothLogSumExp, mnn.SmoothSoftmax,
                   mnn.SmoothArgmax):  # fmt: skip
        for kernel in ("gaussian", "logistic"):
            with pytest.raises(ValueError, match="takes no kernel"):
                module(kernel=kernel)
        module()


def test_modules_need_tensors_and_a_channel_axis():
    with pytest.raises(TypeError, match=r"SmoothReLU takes a torch.Tensor; got ndarray"):
        mnn.SmoothReLU()(np.zeros(3))
    with pytest.raises(TypeError, match="SmoothMax takes a torch.Tensor; got list"):
        mnn.SmoothMax()([1.0, 2.0])
    with pytest.raises(
        ValueError, match=r"per_channel=3 needs a channel axis dim=3; the input has 2 dimensions"
    ):
        mnn.SmoothReLU(per_channel=3, dim=3)(torch.zeros(2, 3))
    with pytest.raises(
        ValueError, match=r"per_channel=3 needs a channel axis dim=1; the input has 0 dimensions"
    ):
        mnn.SmoothReLU(per_channel=3)(torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"per_channel=3 needs a channel axis dim=-3"):
        mnn.SmoothReLU(per_channel=3, dim=-3)(torch.zeros(2, 3))
    out = mnn.SmoothReLU(per_channel=3, dim=-1)(torch.zeros(2, 3))
    assert out.shape == (2, 3)


def test_deferred_initialization_on_the_meta_device():
    # FSDP and large-model users build modules on the meta device, then materialize
    with torch.device("meta"):
        module = mnn.SmoothReLU(width=0.3, learnable_width=True)
    assert module.raw_width.is_meta
    assert "width=meta" in repr(module)
    module = module.to_empty(device="cpu")
    with torch.no_grad():
        module.raw_width.fill_(0.0)
        module.min_width.fill_(0.0)
    assert float(module.width.detach()) == pytest.approx(np.log(2.0))
    assert torch.isfinite(module(torch.linspace(-1, 1, 5))).all()


def test_parameters_hold_one_element_and_old_scalar_checkpoints_load():
    # FSDP2's fully_shard refuses 0-d parameters: the width and SAU's slope hold one
    # element, the width reads as a 0-d tensor, and checkpoints of 0-d values still load
    sau = mnn.SAU(0.2, width=0.5)
    assert sau.raw_width.shape == (1,) and sau.negative_slope.shape == (1,)
    assert sau.width.shape == ()
    old = {k: v.reshape(()) if v.numel() == 1 else v for k, v in sau.state_dict().items()}
    old["raw_width"] = torch.tensor(mnn._inverse_softplus(0.7 - 0.5e-3))
    old["negative_slope"] = torch.tensor(0.3)
    sau.load_state_dict(old)
    width = float(sau.width.detach())
    assert width == pytest.approx(0.7, rel=1e-6)
    assert float(sau.negative_slope.detach()) == pytest.approx(0.3)
    x = torch.linspace(-2.0, 2.0, 9)
    smooth_relu = mol.relu(x, width=width, kernel="gaussian")
    torch.testing.assert_close(sau(x).detach(), 0.3 * x + 0.7 * smooth_relu)
    per_channel = mnn.SmoothReLU(per_channel=3, learnable_width=True)
    assert per_channel.raw_width.shape == (3,)
