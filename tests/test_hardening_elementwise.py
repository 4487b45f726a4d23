"""Hardening of the elementwise ops (issue #13): no silent wrong value, NaN in gives NaN
out (values and derivatives), finite derivatives where the truth is finite, one saved
tensor with straight-through, at every width."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import scipy.special as sc
import torch

import mollifier as mol
from conftest import BACKENDS, OPS, op_kernel_pairs, to_backend, to_numpy
from mollifier._catalogue import CATALOGUE
from test_fast_path import saved_for_backward

PAIRS = op_kernel_pairs()
KERNELS = sorted(mol.kernels)


def _grad(backend: str, fn, x):
    """The elementwise derivative of ``fn`` at ``x`` (torch autograd or ``jax.grad``)."""
    if backend == "torch":
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(fn(x).sum(), x)
        return to_numpy(g)
    return to_numpy(jax.vmap(jax.grad(fn))(x))


# -- item 1: t = (x - c)/w underflowing to -0 ----------------------------------------------
@pytest.mark.parametrize(("name", "kernel"), PAIRS)
def test_tiny_x_with_a_wide_kernel_is_the_value_at_zero(name, kernel):
    """Where ``x / w`` underflows to ``-0`` the hard part and the tail take the same side:
    ``step(-1e-38, w=1e8)`` is 1/2 (was 0), ``sign`` 0 (was -1)."""
    op = OPS[name]
    for backend in BACKENDS:
        for dtype in ("float32", "float64"):
            fi = np.finfo(dtype)
            tiny = [-1e-38, 1e-38, -fi.smallest_subnormal, fi.smallest_subnormal, -fi.tiny,
                    fi.tiny, -0.0, 0.0]  # fmt: skip
            x = to_backend(backend, tiny, dtype)
            # JAX compiles each primitive anew for every static width: the extremes and 1
            widths = (1e-8, 1.0, 1e8) if backend == "jax" else (1e-8, 1e-3, 1.0, 1e3, 1e8)
            for width in widths:
                y = to_numpy(op(x, width=width, kernel=kernel))
                at_zero = y[-1]
                tolerance = 8 * fi.eps * max(abs(at_zero), min(width, 1.0)) + 1e-30
                assert np.all(np.abs(y - at_zero) <= tolerance), (backend, dtype, width, y)
                if backend == "numpy":
                    continue
                for straight_through in (False, True):
                    g = _grad(backend, lambda v: op(v, width=width, kernel=kernel,
                                                    straight_through=straight_through), x)  # fmt: skip
                    tolerance = 8 * fi.eps * max(abs(g[-1]), 1.0 / width) + 1e-30
                    assert np.all(np.abs(g - g[-1]) <= tolerance), (backend, dtype, width, g)


# -- item 2: Jensen and the Gaussian tails -------------------------------------------------
def test_torch_gaussian_relu_and_hinge_are_not_negative():
    for dtype in (torch.float16, torch.float32, torch.float64):
        x = torch.tensor([-5.5, -8.0, -13.0, -14.0, -39.0], dtype=dtype)
        assert torch.all(mol.relu(x, width=1.0, kernel="gaussian") >= 0)
        assert torch.all(mol.hinge(-x, width=1.0, kernel="gaussian") >= 0)
    big = torch.tensor([-5e8, -1.38e9], dtype=torch.float32)
    assert torch.all(mol.relu(big, width=1e8, kernel="gaussian") >= 0)
    assert torch.all(mol.hinge(-big, width=1e8, kernel="gaussian") >= 0)


def test_torch_gaussian_cdf_keeps_its_lower_tail():
    """``torch.special.ndtr`` cancels to 0 below -5.5 in float32: the Gaussian step is
    ``erfc(-t/sqrt 2) / 2``, as accurate as scipy's."""
    for dtype, points in ((torch.float32, [-5.5, -8.0, -12.0]), (torch.float64, [-8, -20, -37])):
        x = torch.tensor(points, dtype=dtype)
        want = sc.ndtr(np.asarray(points, dtype=np.float64))
        for got in (mol.step(x, width=1.0, kernel="gaussian"),
                    mol.step(x * 2.0, width=2.0, kernel="gaussian"),
                    mol.kernels["gaussian"].cdf(x)):  # fmt: skip
            # the tail's own conditioning: a relative error of about t^2 eps
            rtol = 4 * torch.finfo(dtype).eps * min(points) ** 2
            np.testing.assert_allclose(to_numpy(got), want, rtol=rtol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("degree", [1, 2])
def test_gaussian_tails_are_accurate_where_they_are_subnormal(dtype, degree):
    """``phi(s) + s Phi(s)`` cancels to nothing (and below 0) once the tail is subnormal;
    the asymptotic series takes over there."""
    kernel = mol.kernels["gaussian"]
    start = {"float32": 12.0, "float64": 36.0}[dtype]
    s = -np.linspace(start, start + 1.5, 16).astype(dtype)
    got = np.asarray(kernel.ramp(s, degree), dtype=np.float64)
    mpmath.mp.dps = 40
    want = []
    for v in s.astype(np.float64):
        v = mpmath.mpf(float(v))
        tail = mpmath.npdf(v) + v * mpmath.ncdf(v)
        if degree == 2:
            tail = (v * v + 1) * mpmath.ncdf(v) + v * mpmath.npdf(v)
        want.append(float(tail))
    want = np.asarray(want).astype(dtype).astype(np.float64)  # what the dtype can hold
    assert np.all(got >= 0)
    # the direct form, up to where it turns subnormal, loses about s^(2 degree) eps
    rtol = 1e-3 if degree == 1 or dtype == "float64" else 5e-2
    normal = want >= np.finfo(dtype).tiny
    np.testing.assert_allclose(got[normal], want[normal], rtol=rtol)
    # subnormal results: within a few units of the smallest subnormal step, relatively
    assert np.all(np.abs(got - want) <= rtol * want + 4 * np.finfo(dtype).smallest_subnormal)


# (leaky ReLU is convex too, but its hard op in float16 multiplies by 0.1 rounded to
# float16, a different slope)
CONVEX = ("relu", "abs", "hinge")
MONOTONE = {"relu": 1, "leaky_relu": 1, "clip": 1, "hinge": -1, "step": 1}


@pytest.mark.parametrize(
    ("name", "kernel"), [(n, k) for n, k in PAIRS if n in CONVEX or n in MONOTONE]
)
def test_smooth_convex_ops_lie_above_the_hard_op_and_monotone_ops_are_monotone(name, kernel):
    """Jensen: a kernel average of a convex function lies above it, in every dtype and
    backend (the torch Gaussian ReLU went negative; the fused logistic ReLU an ulp
    below x); monotone on a grid coarse enough for the dtype's rounding."""
    op = OPS[name]
    entry = CATALOGUE[name]
    for backend in BACKENDS:
        for dtype in ("float16", "float32", "float64"):
            if backend == "jax" and dtype == "float16":
                continue
            for width in (1e-3, 1.0, 1e8):
                if dtype == "float16" and width > 1.0:
                    continue
                dense = np.concatenate([np.linspace(-60, 60, 6001), -np.geomspace(1e-6, 1e3, 500),
                                        np.geomspace(1e-6, 1e3, 500)]) * width  # fmt: skip
                xs = np.unique(dense.astype(dtype))
                x = to_backend(backend, xs, dtype)
                y = to_numpy(op(x, width=width, kernel=kernel))
                if name in CONVEX:
                    hard = to_numpy(entry.hard_value(x))
                    assert np.all(y >= hard), (backend, dtype, width, xs[y < hard][:4])
                # clip at w >> its range in float32: its two tails cancel to eps w
                if name in MONOTONE and not (name == "clip" and width > 1e3):
                    coarse = np.unique(np.linspace(-60, 60, 241).astype(dtype) * width)
                    yc = to_numpy(op(to_backend(backend, coarse, dtype), width=width,
                                     kernel=kernel)) * MONOTONE[name]  # fmt: skip
                    slack = 4 * np.finfo(dtype).eps * np.abs(yc[1:])
                    assert np.all(np.diff(yc) >= -slack), (backend, dtype, width)


# -- item 8: NaN and infinities ------------------------------------------------------------
def _two_input(name):
    return {
        "delta": lambda v, **k: mol.delta(v, **k),
        "equal": lambda v, **k: mol.equal(v, 0.3, **k),
        "greater": lambda v, **k: mol.greater(v, 0.3, **k),
    }[name]


EXTRA = ("delta", "equal", "greater")


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("name", ["delta", "equal"])
def test_delta_and_equal_keep_nan(name, kernel):
    op = _two_input(name)
    for backend in BACKENDS:
        y = to_numpy(op(to_backend(backend, [np.nan, 0.3, 5.0]), width=0.5, kernel=kernel))
        assert np.isnan(y[0]) and np.all(np.isfinite(y[1:])), (backend, y)
        assert np.isnan(mol.kernels[kernel].pdf(np.array(np.nan)))


def _all_ops():
    ops = [(n, k, OPS[n]) for n, k in PAIRS]
    ops += [(n, k, _two_input(n)) for n in EXTRA for k in KERNELS]
    return ops


@pytest.mark.parametrize(("name", "kernel", "op"), _all_ops(), ids=lambda v: str(v)[:20])
def test_derivatives_are_finite_at_infinities_and_nan_at_nan(name, kernel, op):
    """First and second derivatives (torch autograd, ``jax.grad``, ``jax.jvp``) at
    ``±inf`` and ``±max`` are finite (delta/equal were NaN, gelu/swish on JAX, second
    derivatives of the Gaussian, Cauchy and sqrt steps), and NaN at NaN (JAX's forward
    mode gave 1), for float widths and array widths alike."""
    array_width = name in EXTRA or CATALOGUE[name].array_width
    for dtype in ("float32", "float64"):
        big = float(np.finfo(dtype).max)
        xs = [np.nan, np.inf, -np.inf, big, -big]
        nan = np.isnan(xs)
        for width in (1e-3, 0.3):
            widths = [width]
            if array_width:
                widths += [torch.tensor(width, dtype=getattr(torch, dtype)),
                           jnp.asarray(width, dtype=dtype)]  # fmt: skip
            for w in widths:
                # JAX compiles each primitive for every new static width (about a second
                # a case): at 1e-3, whose x / w overflows as at 0.3, torch alone
                frameworks = ("torch", "jax") if isinstance(w, float) else (
                    ("torch",) if isinstance(w, torch.Tensor) else ("jax",))  # fmt: skip
                if isinstance(w, float) and w == 1e-3:
                    frameworks = ("torch",)
                elif not isinstance(w, float) and width == 1e-3:
                    frameworks = () if "jax" in frameworks else frameworks
                for backend in frameworks:
                    x = to_backend(backend, xs, dtype)
                    f = lambda v: op(v, width=w, kernel=kernel)  # noqa: E731
                    if backend == "torch":
                        xt = x.detach().requires_grad_(True)
                        (g,) = torch.autograd.grad(f(xt).sum(), xt, create_graph=True)
                        firsts = [to_numpy(g)]
                        seconds = [to_numpy(torch.autograd.grad(g.sum(), xt)[0])
                                   if g.requires_grad else np.zeros(len(xs))]  # fmt: skip
                    else:
                        firsts = [to_numpy(jax.vmap(jax.grad(f))(x)),
                                  to_numpy(jax.jvp(f, (x,), (jnp.ones_like(x),))[1])]  # fmt: skip
                        seconds = [to_numpy(jax.vmap(jax.grad(jax.grad(f)))(x))]
                    for g in firsts:
                        assert np.all(np.isnan(g) == nan), (backend, dtype, w, g)
                    for g in seconds:
                        assert np.all(np.isfinite(g[~nan])), (backend, dtype, w, g)


@pytest.mark.parametrize(
    ("name", "kernel"), [p for p in PAIRS if p[0] in ("relu", "step", "floor")]
)
def test_straight_through_gradients_are_the_smooth_ones_at_nan_and_infinity(name, kernel):
    op = OPS[name]
    xs = [np.nan, np.inf, -np.inf, -1.0, 0.0, 2.5]
    for backend in ("torch", "jax"):
        x = to_backend(backend, xs)
        smooth = _grad(backend, lambda v: op(v, width=0.3, kernel=kernel), x)
        hard = _grad(backend, lambda v: op(v, width=0.3, kernel=kernel, straight_through=True), x)
        np.testing.assert_array_equal(hard, smooth)
        assert np.isnan(hard[0])


# -- item 9: staircases at every width -----------------------------------------------------
STAIRCASES = {"floor": np.floor, "ceil": np.ceil, "round": np.round, "trunc": np.trunc}


@pytest.mark.parametrize("kernel", KERNELS)
def test_quantize_at_extreme_step_to_width_ratios(kernel):
    """``quantize(0.3, 1e-100, width=1)`` raised ``OverflowError`` for the compact
    kernels; ``quantize(0.3, 1e305, width=1e-8)`` was NaN (truth 0)."""
    x = np.array([0.3, -0.7, 7.49])
    for backend in BACKENDS:
        xb = to_backend(backend, x)
        fine = to_numpy(mol.quantize(xb, 1e-100, width=1.0, kernel=kernel))
        np.testing.assert_allclose(fine, x, rtol=1e-15)  # the grid is far finer than w
        np.testing.assert_allclose(  # w / step = inf: the identity
            to_numpy(mol.quantize(xb, 1e-300, width=1e10, kernel=kernel)), x, rtol=1e-15
        )
        coarse = to_numpy(mol.quantize(xb, 1e305, width=1e-8, kernel=kernel))
        assert np.all(np.abs(coarse) <= 1e-15 * 1e305), coarse  # 0, to the step's rounding
        assert mol.quantize(0.3, 1e305, width=1e-8, kernel=kernel) == pytest.approx(0, abs=1e290)


@pytest.mark.parametrize("kernel", KERNELS)
def test_staircases_at_tiny_and_huge_widths(kernel):
    """Finite values and slopes at subnormal widths (1/w overflowed: NaN at integers) and
    huge ones (the compact kernels' w^(j+1) overflowed); away from the steps the hard
    op, at the steps the midpoint."""
    x = np.array([0.3, -2.0, 2.5, -0.7, 7.49])
    for backend in ("numpy", "torch"):
        for width in (1e-320, 1e-310, 1e-300, 1e200, 1e300, 1e308):
            for name, hard in STAIRCASES.items():
                op = getattr(mol, name)
                xt = to_backend(backend, x)
                if backend == "torch":
                    xt.requires_grad_(True)
                y = op(xt, width=width, kernel=kernel)
                if backend == "torch":
                    assert np.all(
                        np.isfinite(to_numpy(torch.autograd.grad(y.sum(), xt)[0])[[0, 3, 4]])
                    )
                y = to_numpy(y)
                assert np.all(np.isfinite(y)), (backend, width, name, y)
                if width < 1.0:
                    away = [0, 3, 4]
                    np.testing.assert_allclose(y[away], hard(x[away]), atol=1e-12)
                    jump = {"floor": -2.5, "ceil": -1.5, "round": -2.0, "trunc": -1.5}[name]
                    assert y[1] == jump
                elif name == "round":
                    np.testing.assert_allclose(y, x, rtol=1e-15)  # round_w(x) -> x


# -- item 13: one saved tensor -------------------------------------------------------------
@pytest.mark.parametrize(("name", "kernel"), PAIRS)
def test_one_tensor_is_saved_with_and_without_straight_through(name, kernel):
    """Straight-through saved 3-37 tensors (the smooth graph kept alive by
    ``hard - (s.detach() - s)``, a mask, the hard op's own graph); widths outside
    (1e-30, 1e30) fell off the fast path."""
    op = OPS[name]
    for width in (0.1, 1e-40, 1e40):
        for straight_through in (False, True):
            x = torch.randn(1000, requires_grad=True)
            saved, y = saved_for_backward(
                lambda: op(x, width=width, kernel=kernel, straight_through=straight_through)
            )
            assert len(saved) == 1, (width, straight_through, len(saved))
            assert saved[0] is x or saved[0].data_ptr() == y.data_ptr() or straight_through
            y.sum().backward()
            assert torch.all(torch.isfinite(x.grad)) or width != 0.1


ARRAY_WIDTH_PAIRS = [(n, k) for n, k in PAIRS if CATALOGUE[n].array_width]


@pytest.mark.parametrize(("name", "kernel"), ARRAY_WIDTH_PAIRS)
def test_a_learnable_width_keeps_only_the_inputs_for_backward(name, kernel):
    """A tensor width takes the generic formula under autograd, which kept every
    intermediate (18-48 tensors, 650 for clip's cluster form); it is recomputed in
    backward now: x and the width are kept, with or without straight-through, and the
    gradients are autograd's of the plain formula."""
    op = OPS[name]
    x = torch.linspace(-3.0, 3.0, 101, dtype=torch.float64, requires_grad=True)
    for straight_through in (False, True):
        w = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
        saved, y = saved_for_backward(
            lambda w=w: op(x, width=w, kernel=kernel, straight_through=straight_through)
        )
        assert len(saved) <= 2 and all(t is x or t is w for t in saved), len(saved)
        got = torch.autograd.grad(y.sum(), (x, w))
        plain = jax.grad(lambda v, u: op(v, width=u, kernel=kernel).sum(), argnums=(0, 1))(
            jnp.asarray(x.detach().numpy()), jnp.asarray(0.7)
        )
        np.testing.assert_allclose(got[0].numpy(), np.asarray(plain[0]), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got[1].numpy(), np.asarray(plain[1]), rtol=1e-12, atol=1e-12)


def test_straight_through_output_can_be_modified_in_place():
    x = torch.tensor([-1.0, 0.2, 3.0], requires_grad=True)
    y = mol.relu(x, width=0.3, straight_through=True)
    y.mul_(2.0).sum().backward()
    (smooth,) = torch.autograd.grad(mol.relu(x, width=0.3).sum(), x)
    torch.testing.assert_close(x.grad, 2.0 * smooth)


# -- clusters of breakpoints under a wide kernel (the long fuzz profile) ---------------------
def _clip_reference(kernel: str, width: float, x: float) -> tuple[float, float]:
    """clip(x, 0, 1) smoothed and its slope, independently of the engine:
    ``int_0^1 K((x - s)/w) ds`` by mpmath quadrature, and ``K(x/w) - K((x - 1)/w)``."""
    from mollifier._reference import _cdf

    with mpmath.workdps(30):
        x_, w = mpmath.mpf(x), mpmath.mpf(width)
        cuts = sorted({mpmath.mpf(0), mpmath.mpf(1)} | {
            c for c in (x_ - w, x_, x_ + w) if 0 < c < 1
        })  # fmt: skip
        value = mpmath.quad(lambda s: _cdf(kernel, (x_ - s) / w), cuts)
        slope = _cdf(kernel, x_ / w) - _cdf(kernel, (x_ - 1) / w)
        return float(value), float(slope)


@pytest.mark.parametrize("kernel", KERNELS)
def test_clip_under_a_kernel_much_wider_than_its_range(kernel):
    """The breakpoint form's tails, each about ``w``, cancelled to ``eps * w``: float32
    ``clip(x, 0, 1)`` at ``w = 1e8`` gave 0, -1 or 2 (not monotone). The cluster form
    has nothing to cancel: a few ulps of the truth at every width, in value and slope."""
    xs = [-3e8, -2.0, 0.0, 0.3, 1.7, 5e7]
    for width in (0.3, 1e3, 1e8):
        truth = np.array([_clip_reference(kernel, width, x) for x in xs])
        for backend in BACKENDS:
            for dtype in ("float32", "float64"):
                eps = float(np.finfo(dtype).eps)
                x = to_backend(backend, xs, dtype)
                y = to_numpy(mol.clip(x, 0.0, 1.0, width=width, kernel=kernel))
                # a few ulps of the range [0, 1] (far tails in float32 carry fewer digits)
                assert np.allclose(y, truth[:, 0], rtol=8 * eps, atol=8 * eps), (
                    backend, dtype, width
                )  # fmt: skip
                if backend == "numpy":
                    continue
                g = _grad(backend, lambda v: mol.clip(v, 0.0, 1.0, width=width, kernel=kernel), x)
                scale = np.max(np.abs(truth[:, 1]))
                assert np.allclose(g, truth[:, 1], rtol=64 * eps, atol=64 * eps * scale), (
                    backend, dtype, width, g, truth[:, 1]
                )  # fmt: skip
        grid = np.linspace(-3.0 * width, 3.0 * width, 2001, dtype=np.float32)
        steps = np.diff(mol.clip(grid, 0.0, 1.0, width=width, kernel=kernel))
        assert np.all(steps >= -2 * np.finfo(np.float32).eps), width  # rounding, not 0 to 2


@pytest.mark.parametrize("kernel", ["gaussian", "laplace", "biweight"])
def test_a_user_cluster_with_quadratic_pieces(kernel):
    """Three breakpoints within 0.3, jumps, kinks and curvature changes, against mpmath
    quadrature of ``f(x - w u) k(u)`` split at the kinks: both exact forms (apart at
    ``w = 0.5``, the cluster form from ``w = 1.2``), and an array width choosing entry by
    entry."""
    from mollifier._reference import convolve

    f = mol.Piecewise([0.0, 0.1, 0.3], [[0.5], [0.0, 1.0, 3.0], [0.2, -1.0], [0.4, 0.5, -0.5]])

    def exact(s):
        return mpmath.mpf(float(f(np.array(float(s)))))

    xs = [-3.0, -0.2, 0.05, 0.3, 4.0]
    widths = (0.5, 1.2, 1e4)
    for width in widths:
        g = mol.smooth(f, kernel=kernel, width=width)
        truth = np.array([float(convolve(exact, f.breakpoints, kernel, width, x)) for x in xs])
        scale = 1.0 + width * width  # the quadratic outer piece
        assert np.allclose(g(np.array(xs)), truth, rtol=0, atol=4e-15 * scale), width
    x = torch.tensor(xs * 2, dtype=torch.float64)
    w = torch.tensor([widths[0]] * len(xs) + [widths[-1]] * len(xs), dtype=torch.float64)
    both = mol.smooth(f, kernel=kernel, width=w)(x).numpy()
    one_by_one = [mol.smooth(f, kernel=kernel, width=v)(np.array(xs)) for v in widths[::2]]
    assert np.allclose(both, np.concatenate(one_by_one), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("kernel", ["sqrt", "cauchy"])
def test_heavy_tailed_delta_slope_at_the_bfloat16_max(backend, kernel):
    """``slope * u`` overflowed in the score at the bfloat16 max (``-inf * 0``), and the
    density's ``sqrt(g)`` had an infinite derivative where ``g`` underflowed: NaN
    gradients of delta for array and Python widths alike."""
    big = float(torch.finfo(torch.bfloat16).max)
    xs = [big, -big, 1e38, 2.0, -0.5, 0.0]
    x = to_backend(backend, xs, "bfloat16")
    for width in (1.0, 1e8):
        for w in (width, to_backend(backend, [width] * len(xs), "bfloat16")):
            if backend == "torch":
                g = _grad(backend, lambda v, w=w: mol.delta(v, width=w, kernel=kernel), x)
            else:
                g = to_numpy(jax.grad(lambda v, w=w: mol.delta(v, width=w, kernel=kernel).sum())(x))
            assert np.all(np.isfinite(g)), (width, g)
            assert np.all(g[:3] == 0.0), g
    density = mol.kernels[kernel].pdf(np.array([-3.0, -1.0, 0.5, 2.0, 1e200]))
    power = 1.5 if kernel == "sqrt" else 1.0
    scale = 0.5 if kernel == "sqrt" else 1 / np.pi
    u = np.array([-3.0, -1.0, 0.5, 2.0, 1e200])
    with np.errstate(over="ignore"):
        assert np.allclose(density, scale / (1.0 + u * u) ** power, rtol=1e-14, atol=0)


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize(
    "op", [mol.swish, mol.gelu, mol.step, lambda v, **k: mol.clip(v, -1.0, 1.0, **k)]
)
def test_width_gradient_where_t_is_finite_but_steep_in_the_width(backend, op):
    """``x = 1e30``, ``w = 1.8e-8``: ``t = x/w = 5.5e37`` is finite in float32 but its width
    derivative ``-t/w`` is not, and met the kernel's 0 there as ``0 * inf`` (NaN). There
    ``t`` now keeps its value and takes no width derivative (the kernel is at its limit)."""
    xs = [1.0002555517425873e30, -1e30, -1.0, 0.5]
    ws = [1.8044374883174896e-08, 1.8e-8, 27.125, 0.3]
    for dtype in ("bfloat16", "float32"):
        x = to_backend(backend, xs, dtype)
        w = to_backend(backend, ws, dtype)
        if backend == "torch":
            w = w.detach().requires_grad_(True)
            op(x, width=w).sum().backward()
            g = to_numpy(w.grad)
        else:
            g = to_numpy(jax.grad(lambda v: op(x, width=v).sum())(w))
        assert np.all(np.isfinite(g)), (dtype, g)
        assert g[0] == 0.0 and g[1] == 0.0, g
        x64 = torch.tensor(xs[2:], dtype=torch.float64)
        w64 = torch.tensor(ws[2:], dtype=torch.float64, requires_grad=True)
        op(x64, width=w64).sum().backward()
        np.testing.assert_allclose(g[2:], w64.grad.numpy(), rtol=2e-2, atol=1e-6)
