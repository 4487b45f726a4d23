"""Pictures: the PNGs are real images with the right panels; the CLI writes them."""

import subprocess
import sys

import numpy as np
import pytest
from matplotlib import image

import mollifier as mol
from mollifier import plot


def non_trivial_png(path):
    pixels = image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 300 and pixels.shape[1] > 300
    assert pixels.std() > 0.05  # not a blank canvas
    return pixels


@pytest.mark.parametrize("op", ["relu", "floor", "clip", "quantize", "sign"])
def test_plot_has_values_and_derivatives(op, tmp_path):
    figure = plot.plot(op, kernel="gaussian", widths=[0.05, 0.3])
    values, slopes = figure.axes
    assert len(figure.axes) == 2
    assert [line.get_label() for line in values.lines] == [f"{op} (hard)", "w = 0.05", "w = 0.3"]
    assert len(slopes.lines) == 3
    x, y = values.lines[2].get_data()
    # the plot draws the catalogue's example parameters (clip to [-1, 2], quantize by 1/4
    # with offset 1/10)
    params = {"clip": {"lower": -1.0, "upper": 2.0}, "quantize": {"step": 0.25, "offset": 0.1}}
    expected = getattr(mol, op)(x, **params.get(op, {}), width=0.3, kernel="gaussian")
    np.testing.assert_allclose(y, expected)
    # the error band is drawn only where the op is Lipschitz
    assert bool(values.collections) == (op in ("relu", "clip"))
    figure.savefig(tmp_path / "out.png")
    non_trivial_png(tmp_path / "out.png")


def test_compare_kernels_skips_divergent_cauchy():
    labels = [line.get_label() for line in plot.compare_kernels("abs", width=0.4).axes[0].lines]
    assert "cauchy" not in labels and len(labels) == 1 + len(mol.kernels) - 1
    labels = [line.get_label() for line in plot.compare_kernels("step", width=0.4).axes[0].lines]
    assert "cauchy" in labels


def test_bad_arguments():
    with pytest.raises(ValueError, match="op must be one of"):
        plot.plot("sqrt")
    with pytest.raises(ValueError, match="kernel must be one of"):
        plot.plot("relu", kernel="gauss")
    with pytest.raises(ValueError, match="x_range"):
        plot.plot("relu", x_range=(1.0, -1.0))


def test_cli_plot(tmp_path):
    out = tmp_path / "floor.png"
    run = subprocess.run(
        [sys.executable, "-m", "mollifier", "plot", "floor", "--kernel", "cauchy",
         "--width", "0.1", "--width", "0.4", "--range", "-2", "2", "-o", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    non_trivial_png(out)
    bad = subprocess.run([sys.executable, "-m", "mollifier", "plot", "sqrt", "-o", str(out)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode == 2 and "relu" in bad.stderr
    bad = subprocess.run([sys.executable, "-m", "mollifier", "plot", "relu", "--kernel", "cauchy",
                          "-o", str(out)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode == 2 and "diverges" in bad.stderr


def test_gallery_writes_figures_and_an_index(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "mollifier", "gallery", "-o", str(tmp_path),
         "--op", "relu", "--op", "floor", "--kernel", "gaussian", "--kernel", "cauchy"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    figures = (*plot.SEED_FIGURES, *plot.FAMILY_FIGURES, *plot.SORTING_FIGURES)
    assert f"3/{3 + len(figures)}" in run.stderr  # progress
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == sorted(["relu-gaussian.png", "floor-gaussian.png", "floor-cauchy.png",
                            *(f"{n}.png" for n in figures)])  # fmt: skip
    for name in names:
        non_trivial_png(tmp_path / name)
    index = (tmp_path / "index.html").read_text()
    assert all(f'src="{name}"' in index for name in names)
    bad = subprocess.run([sys.executable, "-m", "mollifier", "gallery", "-o", str(tmp_path),
                          "--kernel", "gauss"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode == 2 and "gaussian" in bad.stderr


def test_compare_kernels_at_equal_spread():
    """At equal E|U| w every kernel misses ReLU at the kink by the same w E|U| / 2; at
    equal standard deviation the kernels without one are left out."""
    figure = plot.compare_kernels("relu", width=0.3, match="mean_abs", errors=True, points=2001)
    values, _, errors = figure.axes
    at_kink = [line.get_ydata()[1000] for line in values.lines[1:]]  # x = 0
    np.testing.assert_allclose(at_kink, 0.15, rtol=1e-12)
    assert len(errors.lines) == len(values.lines) - 1
    labels = [line.get_label() for line in plot.compare_kernels("step", match="std").axes[0].lines]
    assert "sqrt" not in labels and "cauchy" not in labels and "gaussian" in labels
    with pytest.raises(ValueError, match="match must be one of"):
        plot.compare_kernels("relu", match="variance")
