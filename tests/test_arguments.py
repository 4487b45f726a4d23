"""Bad arguments raise a clear TypeError/ValueError naming them; nothing is read silently.

Flags take only bools, widths and tol only real numbers (or real arrays of the right
shape), ``where=`` only boolean masks that broadcast to ``x``, and two-input ops name
the input they refuse. Also: integer promotion under JAX x64 and 0-d NumPy results.
"""

import inspect
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
import torch

import mollifier as mol
from mollifier._catalogue import CATALOGUE

X = np.array([-1.0, 0.0, 2.0])
INPUT_NAMES = ("x", "x1", "x2", "a", "b", "p", "q")


def _inputs(function):
    """How many array inputs an op takes (``x``; ``x1, x2``; ``a, b``; ``x, a, b``)."""
    return sum(
        p.kind is inspect.Parameter.POSITIONAL_ONLY and p.name in INPUT_NAMES
        for p in inspect.signature(function).parameters.values()
    )


def call(name, x=X, **knobs):
    """The public op ``name`` at its example parameters on ``x`` (every input ``x``)."""
    entry = CATALOGUE[name]
    function = entry.smooth
    if "width" in inspect.signature(function).parameters:
        knobs.setdefault("width", 0.5)
    return function(*[x] * _inputs(function), **entry.params, **knobs)


FLAGS = [
    (name, flag)
    for name, entry in CATALOGUE.items()
    for flag in ("straight_through", "keepdims", "index")
    if flag in inspect.signature(entry.smooth).parameters
]


@pytest.mark.parametrize(("name", "flag"), FLAGS)
@pytest.mark.parametrize("bad", ["no", "", 1, 0, None, np.array(True), 1.0])
def test_flags_take_only_bools(name, flag, bad):
    with pytest.raises(TypeError, match=f"{flag} must be True or False"):
        call(name, **{flag: bad})


@pytest.mark.parametrize(("name", "flag"), FLAGS)
def test_numpy_bools_are_bools(name, flag):
    for value in (True, False):
        got, want = call(name, **{flag: np.bool_(value)}), call(name, **{flag: value})
        for g, w in zip(*(v if isinstance(v, tuple) else (v,) for v in (got, want))):
            np.testing.assert_array_equal(g, w)  # topk returns (values, mask)


def test_every_op_with_a_flag_is_covered():
    # the catalogue-driven list above reaches every flag of every op
    assert {f for _, f in FLAGS} == {"straight_through", "keepdims", "index"}
    assert len([n for n, f in FLAGS if f == "straight_through"]) == len(CATALOGUE) - 1  # delta


def test_flags_of_smooth_and_the_plots():
    relu = mol.Piecewise([0.0], [[0.0], [0.0, 1.0]])
    with pytest.raises(TypeError, match="straight_through must be True or False"):
        mol.smooth(relu, width=0.1, straight_through="no")
    with pytest.raises(TypeError, match="antithetic must be True or False"):
        mol.smooth(np.abs, width=0.1, method="monte_carlo", antithetic="yes")
    g = mol.smooth(np.abs, width=0.1, method="monte_carlo", samples=64, seed=0)
    with pytest.raises(TypeError, match="return_stderr must be True or False"):
        g(X, return_stderr=1)
    from mollifier.plot import compare_kernels

    with pytest.raises(TypeError, match="errors must be True or False"):
        compare_kernels("relu", errors="no")


BAD_WIDTHS = [
    np.array([0.1 + 5j]),
    np.array([True]),
    np.array(["0.1"]),
    np.array([0.1], dtype=object),
    np.array(0.1 + 1j),
    np.array(True),
    np.array("0.1"),
    np.complex128(0.1),
    np.bool_(True),
    np.str_("0.1"),
    0.1 + 0j,
    True,
    "0.1",
    [0.1],
]


@pytest.mark.parametrize("bad", BAD_WIDTHS, ids=repr)
def test_widths_must_be_real(bad):
    with pytest.raises(TypeError, match="width must be a real number"):
        mol.relu(X, width=bad)


@pytest.mark.parametrize("bad", BAD_WIDTHS[4:], ids=repr)
def test_tol_must_be_real(bad):
    with pytest.raises(TypeError, match="tol must be a real number"):
        mol.relu(X, tol=bad)


@pytest.mark.parametrize(
    "bad",
    [torch.tensor([0.1 + 1j]), torch.tensor([True]), jnp.array([0.1 + 1j]), jnp.array([True])],
    ids=repr,
)
def test_framework_widths_must_be_real(bad):
    x = torch.tensor(X) if isinstance(bad, torch.Tensor) else jnp.asarray(X)
    with pytest.raises(TypeError, match="width must be a real number"):
        mol.relu(x, width=bad)


def test_real_widths_of_every_kind_are_accepted():
    expected = mol.relu(X, width=0.5)
    for width in (np.float32(0.5), np.array(0.5), np.array([0.5]), np.array([1]) / 2, 0.5):
        np.testing.assert_allclose(mol.relu(X, width=width), expected, rtol=1e-7)
    np.testing.assert_allclose(mol.relu(X, width=np.array([1, 1, 1])), mol.relu(X, width=1.0))
    jw = mol.relu(jnp.asarray(X, dtype=jnp.bfloat16), width=jnp.array([0.5], dtype=jnp.bfloat16))
    assert jw.dtype == jnp.bfloat16


@pytest.mark.parametrize("framework", ["numpy", "torch", "jax"])
def test_a_width_of_the_wrong_shape_names_width(framework):
    wrap = {"numpy": np.asarray, "torch": torch.tensor, "jax": jnp.asarray}[framework]
    x, width = wrap(X), wrap(np.array([0.1, 0.2]))
    for op in (mol.relu, mol.step, mol.gelu):
        with pytest.raises(ValueError, match=r"width of shape \(2,\) does not broadcast"):
            op(x, width=width)
    with pytest.raises(ValueError, match=r"width of shape \(2,\) does not broadcast"):
        mol.maximum(x, 0.0, width=width)


@pytest.mark.parametrize("framework", ["numpy", "torch", "jax"])
def test_a_per_element_width_on_a_reduction_is_refused(framework):
    wrap = {"numpy": np.asarray, "torch": torch.tensor, "jax": jnp.asarray}[framework]
    x = wrap(np.arange(6.0).reshape(2, 3))
    per_element = wrap(np.full((2, 3), 0.5))
    per_row = wrap(np.array([[0.5], [1.0]]))
    for reduction in (mol.logsumexp, mol.softmax, mol.max, mol.norm, mol.argmax):
        with pytest.raises(ValueError, match="one width per slice"):
            reduction(x, width=per_element)
        out = np.asarray(reduction(x, width=per_row))  # one width per reduced row works
        np.testing.assert_allclose(out[0], np.asarray(reduction(x[0], width=0.5)), rtol=1e-6)
    with pytest.raises(ValueError, match="one width per slice"):
        mol.max(x, width=per_element, method="softmax")
    with pytest.raises(ValueError, match="one width per slice"):
        mol.logsumexp(x, axis=0, width=per_row)


@pytest.mark.parametrize("framework", ["numpy", "torch", "jax"])
def test_where_masks_must_be_boolean_and_fit_x(framework):
    wrap = {"numpy": np.asarray, "torch": torch.tensor, "jax": jnp.asarray}[framework]
    x = wrap(X)
    for reduction in (mol.logsumexp, mol.softmax, mol.max, mol.min, mol.argmax, mol.argmin):
        for mask in (wrap(np.array([1.0, 0.0, 1.0])), wrap(np.array([1, 0, 1]))):
            with pytest.raises(TypeError, match="where must be a boolean mask"):
                reduction(x, width=0.1, where=mask)
        with pytest.raises(ValueError, match=r"where of shape \(2,\) does not broadcast"):
            reduction(x, width=0.1, where=wrap(np.array([True, False])))
        with pytest.raises(ValueError, match=r"where of shape \(2, 3\) does not broadcast"):
            reduction(x, width=0.1, where=wrap(np.ones((2, 3), bool)))
        mask = [True, False, True]
        expected = np.asarray(reduction(x, width=0.1, where=wrap(np.array(mask))))
        np.testing.assert_array_equal(np.asarray(reduction(x, width=0.1, where=mask)), expected)
        np.testing.assert_array_equal(
            np.asarray(reduction(x, width=0.1, where=np.array(mask))), expected
        )
    with pytest.raises(TypeError, match="where must be a boolean mask"):
        mol.max(x, width=0.1, where=wrap(np.array([1.0, 0.0, 1.0])), method="power")


def test_where_masks_of_another_framework_are_refused():
    with pytest.raises(TypeError, match="where must be a boolean array"):
        mol.logsumexp(X, width=0.1, where=torch.tensor([True, False, True]))
    with pytest.raises(TypeError, match="where must be a boolean array"):
        mol.logsumexp(torch.tensor(X), width=0.1, where=jnp.array([True, False, True]))
    with pytest.raises(TypeError, match="where must be a boolean array"):
        mol.logsumexp(X, width=0.1, where="yes")


TWO_INPUTS = {
    "greater": ("x1", "x2"), "less": ("x1", "x2"), "equal": ("x1", "x2"),
    "maximum": ("a", "b"), "minimum": ("a", "b"), "where": ("x", "a", "b"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(TWO_INPUTS))
@pytest.mark.parametrize(
    "bad",
    ["a", None, object(), True, [1.0, "a"]],
    ids=["str", "None", "object", "bool", "mixed-list"],  # stable across pytest-xdist workers
)
def test_two_input_ops_name_the_bad_input(name, bad):
    function = CATALOGUE[name].smooth
    names = TWO_INPUTS[name]
    for i, arg in enumerate(names):
        inputs = [X] * len(names)
        inputs[i] = bad
        with pytest.raises(TypeError, match=f"^{arg} must "):
            function(*inputs, width=0.1)


@pytest.mark.parametrize("name", sorted(TWO_INPUTS))
def test_two_input_ops_accept_lists_like_relu(name):
    function = CATALOGUE[name].smooth
    lists = [[-1.0, 0.0, 2.0], [1, 0, 1], [0.5, 0.5, -3.0]][: len(TWO_INPUTS[name])]
    arrays = [np.asarray(v, dtype=float) for v in lists]
    np.testing.assert_array_equal(function(*lists, width=0.1), function(*arrays, width=0.1))
    np.testing.assert_array_equal(mol.relu([-1.0, 2.0], width=0.1), mol.relu(X[[0, 2]], width=0.1))


def test_norm_takes_numpy_scalar_orders():
    for ord, same in (
        (np.float32(2), 2),
        (np.int64(1), 1),
        (np.float64(np.inf), np.inf),
        (np.int8(0), 0),
    ):
        np.testing.assert_array_equal(
            mol.norm(X, ord=ord, width=0.1), mol.norm(X, ord=same, width=0.1)
        )
    with pytest.raises(TypeError, match="ord must be"):
        mol.norm(X, ord=True, width=0.1)
    with pytest.raises(TypeError, match="ord must be"):
        mol.norm(X, ord="fro", width=0.1)
    for bad in (-1, np.nan, -np.inf):
        with pytest.raises(ValueError, match="ord must be"):
            mol.norm(X, ord=bad, width=0.1)


def test_piecewise_refuses_strings_and_none():
    with pytest.raises(TypeError, match="breakpoints must be a sequence of real numbers; got str"):
        mol.Piecewise("01", [[0.0], [0.0, 1.0], [1.0]])
    with pytest.raises(TypeError, match="breakpoints must be a sequence of real numbers"):
        mol.Piecewise(["0"], [[0.0], [1.0]])
    with pytest.raises(TypeError, match="breakpoints must be a sequence of real numbers"):
        mol.Piecewise([True], [[0.0], [1.0]])
    with pytest.raises(TypeError, match="pieces must be a sequence of polynomials"):
        mol.Piecewise([0], None)
    with pytest.raises(TypeError, match="pieces must be a sequence of polynomials"):
        mol.Piecewise([0], "ab")
    with pytest.raises(TypeError, match="each piece must be a sequence of real coefficients"):
        mol.Piecewise([0], [[0.0], "1"])
    with pytest.raises(TypeError, match="each piece must be a sequence of real coefficients"):
        mol.Piecewise([0], [[0.0], None])
    # NumPy arrays and scalars are sequences of real numbers
    f = mol.Piecewise(np.array([0.0]), [np.zeros(1), [np.float32(0), np.int64(1)]])
    assert f == mol.Piecewise([0.0], [[0.0], [0.0, 1.0]])


def test_error_bound_refuses_unknown_keywords():
    with pytest.raises(TypeError, match="negative_slop"):
        mol.error_bound("relu", width=0.1, negative_slop=0.1)
    with pytest.raises(TypeError, match="negative_slop"):
        mol.error_bound("leaky_relu", width=0.1, negative_slop=0.1)
    with pytest.raises(TypeError, match="negative_slop"):
        mol.width_for(mol.leaky_relu, tol=0.1, negative_slop=0.1)
    with pytest.raises(TypeError, match="a Piecewise takes no parameters"):
        mol.error_bound(mol.Piecewise([0.0], [[0.0], [1.0]]), width=0.1, step=1.0)


@pytest.mark.parametrize("kernel", sorted(mol.kernels))
def test_leaky_relu_at_slope_one_says_why_tol_does_not_fix_a_width(kernel):
    # slope 1 is the identity: no kink, so the error is 0 at every width (not E|U| = inf)
    with pytest.raises(ValueError, match="no jump, kink or curvature") as info:
        mol.leaky_relu(X, 1.0, tol=1e-3, kernel=kernel)
    assert "inf" not in str(info.value)


def test_quantize_with_a_tiny_step_and_a_huge_width_is_not_a_width_error():
    out = mol.quantize(X, 1e-300, width=1e10)  # w / step overflows; the width is fine
    assert out.shape == X.shape and out.dtype == X.dtype


def test_integers_promote_as_jax_nn_does_under_x64():
    # a fresh interpreter: x64 is a global switch of JAX
    code = """
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import mollifier as mol
for dtype in (jnp.int8, jnp.int16, jnp.int32, jnp.uint8, jnp.uint32, jnp.int64):
    x = jnp.arange(3, dtype=dtype)
    expected = jax.nn.softplus(x).dtype
    assert expected == jax.nn.logsumexp(x).dtype == jax.nn.gelu(x).dtype
    for out in (mol.relu(x, width=0.1), mol.logsumexp(x, width=0.1), mol.floor(x, width=0.1),
                mol.maximum(x, x, width=0.1), mol.softmax(x, width=0.1), mol.gelu(x)):
        assert out.dtype == expected, (dtype, out.dtype, expected)
print(jax.nn.softplus(jnp.arange(3, dtype=jnp.int32)).dtype,
      mol.relu(jnp.arange(3, dtype=jnp.int32), width=0.1).dtype,
      mol.relu(jnp.arange(3, dtype=jnp.int64), width=0.1).dtype)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["float32", "float32", "float64"]


def test_integers_promote_to_the_default_float_without_x64():
    for dtype in (jnp.int8, jnp.int32, jnp.uint8):
        assert mol.relu(jnp.arange(3, dtype=dtype), width=0.1).dtype == jnp.float32
    assert (
        mol.relu(torch.arange(3, dtype=torch.int32), width=0.1).dtype == torch.get_default_dtype()
    )
    assert mol.relu(np.arange(3, dtype=np.int8), width=0.1).dtype == np.float64


@pytest.mark.parametrize("name", sorted(CATALOGUE))
@pytest.mark.parametrize("straight_through", [False, True])
def test_zero_dimensional_numpy_inputs_give_zero_dimensional_arrays(name, straight_through):
    entry = CATALOGUE[name]
    if "straight_through" not in inspect.signature(entry.smooth).parameters:
        if straight_through:
            return
        knobs = {}
    else:
        knobs = {"straight_through": straight_through}
    if name in ("argmax", "argmin", "softmax", "logsumexp", "max", "min", "norm", "log_softmax",
                "logmeanexp", "all", "any"):  # fmt: skip
        knobs["axis"] = None
    for x in (np.array(0.5), np.float64(0.5), 0.5, np.float32(0.5)):
        out = call(name, x, **knobs)
        if name == "topk":  # (values, mask): a 0-d mask, and values of its k = 1 entry
            assert out.values.ndim == 0  # as torch.topk
            out = out.mask
        assert type(out) is np.ndarray and out.ndim == 0, (name, type(x), type(out))
