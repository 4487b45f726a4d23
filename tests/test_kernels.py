import math

import mpmath as mp
import numpy as np
import pytest
from scipy import integrate

import mollifier as mol
from mollifier import _reference as ref

KERNELS = sorted(mol.kernels)


@pytest.mark.parametrize("name", KERNELS)
def test_pdf_and_cdf_match_definition(name):
    k = mol.kernels[name]
    ts = [-40.0, -3.0, -0.99, -0.4, 0.0, 0.25, 0.999, 2.0, 40.0]
    pdf, cdf = k.pdf(np.array(ts)), k.cdf(np.array(ts))
    for t, p, c in zip(ts, pdf, cdf):
        assert abs(p - float(ref.pdf(name, mp.mpf(t)))) <= 1e-15
        expected = float(ref.cdf(name, t))
        assert abs(c - expected) <= 1e-15 * max(1e-300, 1.0) or abs(c / expected - 1) < 1e-13


@pytest.mark.parametrize("name", [n for n in KERNELS if math.isfinite(mol.kernels[n].mean_abs)])
@pytest.mark.parametrize("degree", [0, 1, 2])
def test_truncated_moments_by_quadrature(name, degree):
    k = mol.kernels[name]
    if degree > k.max_ramp_degree:  # E[U^2] = inf: the degree-2 moment diverges
        with pytest.raises(ValueError, match="degree"):
            k.ramp(np.array(0.0), degree)
        return
    for t in (-5.0, -0.8, 0.0, 0.3, 0.9, 6.0):
        with mp.workdps(30):
            lo = -1 if k.support == 1 else -mp.inf
            cuts = {min(mp.mpf(0), mp.mpf(t)), mp.mpf(t)}
            if k.support == 1:
                cuts |= {c for c in (mp.mpf(1),) if c < t}
            points = [lo, *sorted(c for c in cuts if c > lo)]
            expected = mp.quad(lambda u: (t - u) ** degree * ref.pdf(name, u), points)
        assert (
            abs(float(k.ramp(np.array(t), degree)) - float(expected)) <= 2e-15 * max(1, abs(t)) ** 2
        )


# kernels whose density decays fast enough for [-60, 60] to hold all but 1e-25 of E[U^2]
LIGHT_TAILED = [n for n in KERNELS if math.isfinite(mol.kernels[n].second_moment)]


@pytest.mark.parametrize("name", LIGHT_TAILED)
def test_partial_moments_and_constants(name):
    k = mol.kernels[name]
    lo = -1.0 if k.support == 1 else -60.0  # the tails beyond 60 are below 1e-25
    for z in (-0.7, 0.0, 0.5):
        for j in range(3):
            expected, _ = integrate.quad(
                lambda u: u**j * float(k.pdf(np.array(u))),
                lo,
                z,
                points=[0.0] if lo < 0 < z else None,
            )
            assert abs(float(k.partial_moment(np.array(z), j)) - expected) < 1e-10
    m1, _ = integrate.quad(lambda u: abs(u) * float(k.pdf(np.array(u))), lo, -lo, points=[0.0])
    m2, _ = integrate.quad(lambda u: u * u * float(k.pdf(np.array(u))), lo, -lo, points=[0.0])
    assert k.mean_abs == pytest.approx(m1, rel=1e-9)
    assert k.second_moment == pytest.approx(m2, rel=1e-9)


@pytest.mark.parametrize("name", KERNELS)
def test_characteristic_function_by_quadrature(name):
    k = mol.kernels[name]
    for omega in (0.0, 1e-4, 0.7, 3.0, 10.0):
        if name not in LIGHT_TAILED:  # heavy tails: the closed forms, by mpmath
            expected = {
                "cauchy": lambda w: math.exp(-w),
                "sqrt": lambda w: float(mp.besselk(1, w) * w) if w else 1.0,
            }[name](omega)
        else:
            lo = -1.0 if k.support == 1 else -60.0
            expected, _ = integrate.quad(
                lambda u: math.cos(omega * u) * float(k.pdf(np.array(u))),
                lo,
                -lo,
                limit=400,
                points=[0.0],
            )
        assert float(k.char_fn(omega)) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("name", KERNELS)
def test_sampler_follows_the_cdf(name):
    k = mol.kernels[name]
    samples = k.sample(200_000, seed=0)
    for t in (-1.5, -0.5, 0.0, 0.3, 1.0):
        empirical = float(np.mean(samples <= t))
        expected = float(k.cdf(np.array(t)))
        # binomial standard error is at most 0.5/sqrt(n) = 1.1e-3; allow 5 of them
        assert abs(empirical - expected) < 5.6e-3


def test_lookup():
    assert mol.get_kernel("Gaussian") is mol.kernels["gaussian"]
    k = mol.kernels["laplace"]
    assert mol.get_kernel(k) is k
    with pytest.raises(ValueError, match="biweight.*cauchy|cauchy.*biweight"):
        mol.get_kernel("parabolic")
    with pytest.raises(TypeError, match="kernel"):
        mol.get_kernel(3)
    with pytest.raises(ValueError, match="degree"):
        k.ramp(np.array(0.0), 3)
    with pytest.raises(ValueError, match="degree"):
        mol.kernels["cauchy"].ramp(np.array(0.0), 1)


def test_compact_cdfs_are_the_smoothstep_family():
    t = np.linspace(-1, 1, 41)
    s = (t + 1) / 2
    expected = {
        "uniform": s,
        "epanechnikov": 3 * s**2 - 2 * s**3,
        "biweight": 6 * s**5 - 15 * s**4 + 10 * s**3,
        "triweight": -20 * s**7 + 70 * s**6 - 84 * s**5 + 35 * s**4,
    }
    for name, values in expected.items():
        np.testing.assert_allclose(mol.kernels[name].cdf(t), values, atol=1e-15)
