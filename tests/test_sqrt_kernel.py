"""The square-root kernel ``k(u) = (1 + u^2)^(-3/2) / 2`` (Student t_2 over sqrt 2).

Its ReLU, abs and max are the seed's square-root smoothings, checked here through the
public API against their closed forms at 50 digits; its staircases (steps decaying only
like ``w^2 r / n^3``) against the mpmath reference summed step by step.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
import torch

import mollifier as mol
from conftest import to_backend, to_numpy
from mollifier import _kernels
from mollifier import _reference as ref
from mollifier._check import sample_points

KERNEL = mol.kernels["sqrt"]
EPS64 = float(np.finfo(np.float64).eps) / 4.0


def _exact(f, *args: float) -> float:
    with mp.workdps(50):
        return float(f(*(mp.mpf(a) for a in args)))


def _ramp(x, w):  # (x + sqrt(x^2 + w^2)) / 2, written without cancellation for x < 0
    root = mp.sqrt(x * x + w * w)
    return (x + root) / 2 if x >= 0 else w * w / (2 * (root - x))


def _gate(x, w):  # x K(x/w), K(t) = 1/(2 q (q - t)) for t < 0
    t = x / w
    q = mp.sqrt(1 + t * t)
    return x / (2 * q * (q - t)) if t < 0 else x * (1 + t / q) / 2


_TINY = float(np.finfo(np.float64).tiny)


def _close(got: float, expected: float, rel: float) -> bool:
    """Relative closeness; exact for 0 and inf. A subnormal ``expected`` may come back
    as 0 (XLA on the CPU flushes subnormals to zero)."""
    if math.isinf(expected) or expected == 0.0:
        return got == expected
    if abs(expected) < _TINY:
        return abs(got - expected) <= rel * abs(expected) or got == 0.0
    return abs(got - expected) <= rel * abs(expected)


# -- the kernel's data ----------------------------------------------------------------
def test_pdf_cdf_and_ramp_against_quadrature():
    for t in (-1e6, -40.0, -3.0, -1.0, -0.4, 0.0, 0.25, 1.0, 2.0, 40.0, 1e6):
        with mp.workdps(40):
            t_ = mp.mpf(t)
            cuts = sorted({mp.mpf(0), t_})
            lower = [-mp.inf, *[c for c in cuts if c <= t_]]
            cdf = mp.quad(lambda u: ref.pdf("sqrt", u), lower)
            ramp = mp.quad(lambda u: (t_ - u) * ref.pdf("sqrt", u), lower)
        assert _close(float(KERNEL.pdf(np.array(t))), float(ref.pdf("sqrt", t_)), 4e-16)
        assert _close(float(KERNEL.cdf(np.array(t))), float(cdf), 1e-14)
        assert _close(float(KERNEL.cdf(np.array(t))), float(ref.cdf("sqrt", t)), 4e-16)
        assert _close(float(KERNEL.ramp(np.array(t), 1)), float(ramp), 1e-14)
    with mp.workdps(30):
        mean_abs = 2 * mp.quad(lambda u: u * ref.pdf("sqrt", u), [0, mp.inf])
    assert KERNEL.mean_abs == pytest.approx(float(mean_abs), rel=1e-15)
    assert KERNEL.second_moment == math.inf and KERNEL.max_ramp_degree == 1
    # far tails keep their digits: K(-a) ~ 1/(4 a^2), P_1(-a) ~ 1/(4a), k(a) ~ 1/(2 a^3)
    assert _close(float(KERNEL.cdf(np.array(-1e150))), 2.5e-301, 1e-15)
    assert _close(float(KERNEL.ramp(np.array(-1e300), 1)), 2.5e-301, 1e-15)
    assert _close(float(KERNEL.pdf(np.array(1e100))), 5e-301, 1e-15)
    limits = np.array([-np.inf, np.inf])
    np.testing.assert_array_equal(KERNEL.cdf(limits), [0.0, 1.0])
    np.testing.assert_array_equal(KERNEL.ramp(limits, 1), [0.0, np.inf])
    np.testing.assert_array_equal(KERNEL.pdf(limits), [0.0, 0.0])


def test_degree_two_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="degree"):
        KERNEL.ramp(np.array(0.0), 2)
    with pytest.raises(ValueError, match="second moment"):
        KERNEL._tail(mol._backend._numpy_backend(), np.array(-1.0), 2)


def test_characteristic_function_against_quadrature():
    # E[cos(omega U)] by quadrature over the oscillations (omega >= 0.7) and, for all,
    # mpmath's |omega| K_1(|omega|) (the library evaluates it with scipy's k1e)
    omegas = [0.0, 1e-10, 1e-4, 0.7, 3.0, 10.0, 50.0]
    got = KERNEL.char_fn(np.array(omegas))
    for omega, value in zip(omegas, got):
        with mp.workdps(30):
            bessel = omega * mp.besselk(1, omega) if omega else mp.mpf(1)
            assert abs(value - float(bessel)) <= 5e-16, omega
            if omega >= 0.7:
                quadrature = 2 * mp.quadosc(
                    lambda u: mp.cos(omega * u) * ref.pdf("sqrt", u), [0, mp.inf], omega=omega
                )
                assert abs(value - float(quadrature)) <= 1e-14, omega
    np.testing.assert_array_equal(KERNEL.char_fn(np.array([1e-300, 1e4, np.inf])), [1, 0, 0])
    assert float(KERNEL.char_fn(-0.7)) == float(KERNEL.char_fn(0.7))


def test_sampler_mean_abs_and_cdf():
    samples = KERNEL.sample(2_000_000, seed=1)
    # E|U| = 1; Var|U| is infinite (E[U^2] = inf), but truncated at the sample's reach,
    # sqrt(n) ~ 1400, it is about log(1400) ~ 7: a standard error near 0.002
    assert abs(np.mean(np.abs(samples)) - 1.0) < 0.01
    for t in (-3.0, -0.5, 0.0, 0.3, 1.0):
        assert abs(np.mean(samples <= t) - float(KERNEL.cdf(np.array(t)))) < 2e-3


def test_numerical_engine_data():
    be = mol._backend._numpy_backend()
    u = np.array([-30.0, -2.0, -0.3, 0.0, 0.7, 5.0])
    for order in (1, 2):
        with mp.workdps(30):
            expected = [float(mp.diff(lambda v: ref.pdf("sqrt", v), mp.mpf(x), order)) for x in u]
        got = KERNEL._density_derivative(be, u, order)
        np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-17)
        np.testing.assert_allclose(KERNEL._score(be, u, order), got / KERNEL.pdf(u), rtol=1e-14)
    # panel weights: k^(n)(tan t) sec^2 t
    t = np.linspace(-1.5, 1.5, 13)
    for order in range(3):
        expected = KERNEL._density_derivative(be, np.tan(t), order) / np.cos(t) ** 2
        np.testing.assert_allclose(
            KERNEL._panel_weight(be, t, order), expected, rtol=1e-12, atol=1e-15
        )
    p = np.array([1e-12, 0.01, 0.3, 0.5, 0.8, 1 - 1e-9])
    np.testing.assert_allclose(KERNEL.cdf(KERNEL._quantile(be, p)), p, rtol=1e-9)


# -- the square-root smoothings through the public API -------------------------------
WIDTHS = [1e-8, 1e-3, 1.0, 1e8]
XS = [-np.inf, -1e300, -1e8, -3.0, -1e-3, -1e-9, 0.0, 1e-300, 1e-9, 0.5, 7.0, 1e8, 1e300, np.inf]


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_relu_abs_gelu_are_the_square_root_forms(backend):
    for w in WIDTHS:
        x = to_backend(backend, XS)
        relu = to_numpy(mol.relu(x, width=w, kernel="sqrt"))
        absolute = to_numpy(mol.abs(x, width=w, kernel="sqrt"))
        gelu = to_numpy(mol.gelu(x, width=w, kernel="sqrt"))
        for i, v in enumerate(XS):
            if math.isinf(v):
                expected_relu = max(v, 0.0)
                expected_gelu = max(v, 0.0)
            else:
                expected_relu = _exact(_ramp, v, w)
                expected_gelu = _exact(_gate, v, w)
            assert _close(relu[i], expected_relu, 1e-15), (w, v, relu[i], expected_relu)
            assert _close(absolute[i], abs(v) if math.isinf(v) else math.hypot(v, w), 1e-15)
            assert _close(gelu[i], expected_gelu, 2e-15), (w, v, gelu[i], expected_gelu)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_maximum_and_minimum_are_the_seeds_square_root_max(backend):
    # (minimum(2.5, inf) is NaN with every kernel: -max(-2.5, -inf) = -(-inf + relu(inf)))
    pairs = [(0.0, 0.0), (1.0, -2.0), (-3.0, -3.0 + 1e-6), (1e300, 5e299), (-1e300, 0.0),
             (1e-9, -1e-9)]  # fmt: skip
    a = to_backend(backend, [p[0] for p in pairs])
    b = to_backend(backend, [p[1] for p in pairs])
    infinite = to_backend(backend, [2.5, -np.inf]), to_backend(backend, [np.inf, 4.0])
    for w in WIDTHS:
        np.testing.assert_array_equal(
            to_numpy(mol.maximum(*infinite, width=w, kernel="sqrt")), [np.inf, 4.0]
        )
        big = to_numpy(mol.maximum(a, b, width=w, kernel="sqrt"))
        small = to_numpy(mol.minimum(a, b, width=w, kernel="sqrt"))
        for i, (p, q) in enumerate(pairs):
            # (a + b + sqrt((a - b)^2 + w^2)) / 2 = b + relu(a - b), and min = -max(-a, -b)
            with mp.workdps(50):
                d, w_ = mp.mpf(p) - mp.mpf(q), mp.mpf(w)
                expected_max = float(mp.mpf(q) + _ramp(d, w_))
                expected_min = float(mp.mpf(q) - _ramp(-d, w_))
            scale = max(abs(p), abs(q), w)
            assert abs(big[i] - expected_max) <= 2e-15 * scale, (w, p, q)
            assert abs(small[i] - expected_min) <= 2e-15 * scale, (w, p, q)


# -- staircases -------------------------------------------------------------------------
EXTRA = [0.5, -0.5, 1.5, 0.4999999999, 1e-9, -1e-9, 0.25, 1e15 + 0.25, -2.0]


def _floor_references(w: float, xs: list[float]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {op: [] for op in ("floor", "ceil", "round", "trunc", "frac")}
    with mp.workdps(40):
        for x in xs:
            floor = ref.floor("sqrt", w, x)
            out["floor"].append(float(floor))
            out["ceil"].append(float(floor + 1))
            out["frac"].append(float(mp.mpf(x) - floor))
            out["trunc"].append(float(floor + ref.cdf("sqrt", -mp.mpf(x) / w)))
            out["round"].append(float(ref.floor("sqrt", w, mp.mpf(x) + mp.mpf(1) / 2)))
    return out


@pytest.mark.parametrize("width", [1e-8, 1e-3, 0.2, 0.6, 0.8, 2.5, 40.0])
def test_staircases_against_the_step_sum(width):
    xs = sample_points(width, quick=False) + (EXTRA if width < 10 else [])
    expected = _floor_references(width, xs)
    x = np.array(xs)
    for op, fn in (("floor", mol.floor), ("ceil", mol.ceil), ("round", mol.round),
                   ("trunc", mol.trunc), ("frac", mol.frac)):  # fmt: skip
        got = fn(x, width=width, kernel="sqrt")
        for xi, g, e in zip(xs, got, expected[op]):
            assert abs(g - e) <= 1e-12 * max(1.0, abs(e)), (op, width, xi, g, e)


@pytest.mark.parametrize("width", [1e-8, 1e-3, 0.2, 0.6, 0.8, 2.5])
def test_staircase_slope_against_the_wrapped_density(width):
    xs = sample_points(width, quick=False) + EXTRA
    # the slope is what torch backpropagates (the closed form) and what JAX derives
    # from the value: both must be the wrapped density
    x64 = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    (torch_slope,) = torch.autograd.grad(mol.floor(x64, width=width, kernel="sqrt").sum(), x64)
    jax_slope = jax.vmap(jax.grad(lambda v: mol.floor(v, width=width, kernel="sqrt")))(
        jnp.array(xs)
    )
    for xi, s_torch, s_jax in zip(xs, torch_slope.numpy(), np.asarray(jax_slope)):
        expected = float(ref.floor_slope("sqrt", width, xi))
        tolerance = 1e-12 * max(1.0, abs(expected))
        assert abs(s_torch - expected) <= tolerance, (width, xi, s_torch, expected)
        assert abs(s_jax - expected) <= tolerance, (width, xi, s_jax, expected)


@pytest.mark.parametrize("width", [0.05, 0.2, 0.6, 0.8, 2.5])
def test_staircase_slope_is_the_derivative_of_the_value(width):
    be = mol._backend._numpy_backend()
    r = np.concatenate([np.linspace(-0.5, 0.5, 41), [-0.4999999, 0.4999999]])
    h = 1e-4 * width
    value = KERNEL._floor_offset
    fd = (value(be, r + h, width, EPS64) - value(be, r - h, width, EPS64)) / (2 * h)
    fd4 = (value(be, r + h / 2, width, EPS64) - value(be, r - h / 2, width, EPS64)) / h
    richardson = (4 * fd4 - fd) / 3  # cancels the h^2 term
    slope = KERNEL._floor_slope(be, r, width, EPS64)
    np.testing.assert_allclose(slope, richardson, rtol=1e-9, atol=1e-9)


def test_staircase_forms():
    form = _kernels._sqrt_staircase_form
    assert form(KERNEL, 1e-8, EPS64)[:2] == ("series", 0)
    assert form(KERNEL, 0.6, EPS64)[0] == "series"
    assert form(KERNEL, 1.0, EPS64)[0] == "fourier"
    for w in (1e-300, 1e-8, 1e-3, 0.1, 0.3, 0.5, 0.7, 0.74):
        kind, *rest = form(KERNEL, w, EPS64)
        assert kind == "series" and rest[0] <= 2 and len(rest[1]) <= 30, (w, rest)
    for w in (0.8, 3.0, 1e3, 1e300):
        kind, terms = form(KERNEL, w, EPS64)
        assert kind == "fourier" and terms <= 8
    # periodicity and the limits of very narrow and very wide kernels
    x = np.array([-3.75, -0.25, 0.0, 0.3, 0.5, 2.5, 7.2])
    np.testing.assert_allclose(mol.floor(x + 5, width=0.4, kernel="sqrt"),
                               mol.floor(x, width=0.4, kernel="sqrt") + 5, atol=1e-14)  # fmt: skip
    # at integers the midpoint n - 1/2, elsewhere the hard floor
    np.testing.assert_array_equal(mol.floor(x, width=1e-300, kernel="sqrt"),
                                  [-4.0, -1.0, -0.5, 0.0, 0.0, 2.0, 7.0])  # fmt: skip
    np.testing.assert_allclose(mol.floor(x, width=1e3, kernel="sqrt"), x - 0.5, atol=1e-15)


def test_float32_staircases_follow_float64():
    x = np.linspace(-3.0, 3.0, 61) + 0.013
    for w in (1e-3, 0.2, 0.6, 2.5):
        for fn in (mol.floor, mol.round, mol.frac):
            single = fn(x.astype(np.float32), width=w, kernel="sqrt")
            assert single.dtype == np.float32
            np.testing.assert_allclose(single, fn(x, width=w, kernel="sqrt"), atol=1e-6)


def test_special_values_and_huge_arguments():
    x = np.array([np.nan, -np.inf, np.inf, 1e300, -1e300, 1e15 + 0.25])
    floor = mol.floor(x, width=0.2, kernel="sqrt")
    np.testing.assert_array_equal(floor[:5], [np.nan, -np.inf, np.inf, 1e300, -1e300])
    assert floor[5] == pytest.approx(float(ref.floor("sqrt", 0.2, 1e15 + 0.25)), abs=0.2)
    frac = mol.frac(x, width=0.2, kernel="sqrt")
    assert np.all(np.isnan(frac[:3])) and np.all(np.isfinite(frac[3:]))
    gate = mol.gelu(np.array([np.nan, -np.inf, np.inf, -1e300]), width=1.0, kernel="sqrt")
    np.testing.assert_array_equal(gate[:3], [np.nan, 0.0, np.inf])
    assert gate[3] == pytest.approx(-2.5e-301, rel=1e-15)


# -- gradients ------------------------------------------------------------------------
OPS = {
    "floor": mol.floor, "ceil": mol.ceil, "round": mol.round, "trunc": mol.trunc,
    "frac": mol.frac, "relu": mol.relu, "abs": mol.abs, "gelu": mol.gelu,
    "step": mol.step, "clip": lambda x, **k: mol.clip(x, -1.0, 2.0, **k),
}  # fmt: skip


@pytest.mark.parametrize("op", sorted(OPS))
def test_torch_gradcheck_and_gradgradcheck(op):
    fn = OPS[op]
    x = torch.tensor([-2.3, -1.0, -0.5, -0.1, 0.0, 0.35, 0.5, 1.7, 3.2], dtype=torch.float64)
    for width in (0.05, 0.3, 0.8, 2.5):
        xg = x.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda v: fn(v, width=width, kernel="sqrt"), (xg,))
        assert torch.autograd.gradgradcheck(lambda v: fn(v, width=width, kernel="sqrt"), (xg,))


def test_maximum_gradcheck():
    a = torch.tensor([-1.0, 0.2, 3.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([0.5, 0.2, -4.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda p, q: mol.maximum(p, q, width=0.3, kernel="sqrt"), (a, b)
    )


@pytest.mark.parametrize("op", sorted(OPS))
def test_gradients_finite_at_special_points(op):
    fn = OPS[op]
    points = [-np.inf, -1e300, -1e8, -0.5, 0.0, 0.5, 1e15 + 0.25, 1e300, np.inf]
    for width in (1e-8, 0.3, 1e8):
        xt = torch.tensor(points, dtype=torch.float64, requires_grad=True)
        (grad,) = torch.autograd.grad(fn(xt, width=width, kernel="sqrt").sum(), xt)
        assert torch.all(torch.isfinite(grad)), (width, grad)
        jax_grad = jax.vmap(jax.grad(lambda v, w=width: fn(v, width=w, kernel="sqrt")))(
            jnp.array(points)
        )
        assert np.all(np.isfinite(np.asarray(jax_grad))), (width, jax_grad)


def test_torch_compile_fullgraph_matches_eager():
    def model(x):
        return (
            mol.floor(x, width=0.2, kernel="sqrt") + mol.round(x, width=1.5, kernel="sqrt")
            + mol.relu(x, width=0.3, kernel="sqrt") + mol.gelu(x, width=0.5, kernel="sqrt")
        )  # fmt: skip

    x = torch.linspace(-3, 3, 37, requires_grad=True)
    compiled = torch.compile(model, fullgraph=True)
    eager, out = model(x), compiled(x)
    torch.testing.assert_close(out, eager)
    torch.testing.assert_close(
        torch.autograd.grad(out.sum(), x)[0], torch.autograd.grad(eager.sum(), x)[0]
    )


# -- the numerical engine ---------------------------------------------------------------
X = np.linspace(-2.9, 3.1, 61) + 0.0123


def test_numerical_engine_on_bounded_functions():
    points = [-3.0, -0.4, 0.0, 0.9, 2.5]
    with mp.workdps(25):
        expected = [
            float(
                mp.quad(
                    lambda u: mp.tanh(x - u / 2) * ref.pdf("sqrt", u), [-mp.inf, 0, 2 * x, mp.inf]
                )
            )
            for x in points
        ]
    # tanh(x - w tan t) turns over steeply near the edges of the angle: 1.2e-7 at
    # x = -3 with the default 256 nodes, round-off with 1024
    g = mol.smooth(np.tanh, kernel="sqrt", width=0.5)
    np.testing.assert_allclose(g(np.array(points)), expected, rtol=0, atol=2e-7)
    g = mol.smooth(np.tanh, kernel="sqrt", width=0.5, nodes=1024)
    np.testing.assert_allclose(g(np.array(points)), expected, rtol=0, atol=1e-11)
    np.testing.assert_allclose(g(np.array([-np.inf, np.inf])), [-1.0, 1.0], rtol=2e-12)
    step = mol.Piecewise([0.0], [[0.0], [1.0]])
    g = mol.smooth(step, kernel="sqrt", width=0.5, method="quadrature")
    np.testing.assert_allclose(g(X), mol.step(X, kernel="sqrt", width=0.5), rtol=0, atol=1e-9)


def test_numerical_engine_on_floor_converges_slowly_and_says_so():
    """Known limit: the engine integrates the heavy tails in the angle u = tan(t), where
    the staircase's jumps crowd together and no budget resolves them: the error falls
    only like 1/nodes, the engine warns (AccuracyWarning), and its estimate covers the
    error. The closed form mol.floor is exact."""
    exact = mol.floor(X, kernel="sqrt", width=0.3)
    errors = []
    for nodes in (1920, 15360):
        g = mol.smooth(np.floor, kernel="sqrt", width=0.3, max_nodes=nodes)
        with pytest.warns(mol.AccuracyWarning, match="did not reach tol"):
            value, estimate = g(X, return_error=True)
        errors.append(float(np.max(np.abs(value - exact))))
        assert np.all(estimate >= np.abs(value - exact))
    assert errors[1] < errors[0] < 5e-3
