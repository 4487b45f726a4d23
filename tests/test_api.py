import inspect
import subprocess
import sys

import numpy as np
import pytest

import mollifier as mol

PUBLIC = {
    "AccuracyWarning", "Kernel", "Piecewise", "abs", "ceil", "clip", "delta", "equal", "error_bound", "floor",
    "frac", "gelu", "get_kernel", "greater", "heaviside", "hinge", "kernels", "leaky_relu",
    "less", "quantize", "relu", "round", "sign", "smooth", "step", "swish", "trunc", "where",
    "width_for", "argmax", "argmin", "logsumexp", "max", "maximum", "min", "minimum", "norm",
    "softmax", "log_softmax", "logmeanexp", "all", "any", "isclose", "logical_and",
    "logical_not", "logical_or", "logical_xor",
    "argsort", "median", "quantile", "rank", "sort", "topk", "fenchel_young_loss",
}  # fmt: skip

OPS = [mol.step, mol.sign, mol.relu, mol.leaky_relu, mol.abs, mol.clip, mol.hinge, mol.floor,
       mol.ceil, mol.round, mol.trunc, mol.frac, mol.quantize, mol.gelu, mol.swish]  # fmt: skip


def test_all_lists_exactly_the_public_names():
    assert set(mol.__all__) == PUBLIC
    assert mol.__all__ == sorted(mol.__all__)
    exported = {n for n in dir(mol) if not n.startswith("_")}
    modules = {"cli", "nn", "plot"}  # optional submodules, attributes once imported
    assert exported - modules == PUBLIC


def test_import_pulls_in_no_framework():
    code = (
        "import sys, mollifier, numpy as np; mollifier.relu(np.ones(3), width=1.0); "
        "mollifier.floor(np.ones(3), width=0.1); "
        "print(sorted(m for m in ('torch', 'jax', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_one_signature_shape():
    for op in OPS:
        params = inspect.signature(op).parameters
        first = next(iter(params.values()))
        assert first.kind is inspect.Parameter.POSITIONAL_ONLY, op.__name__
        for knob in ("width", "tol", "kernel", "straight_through"):
            assert params[knob].kind is inspect.Parameter.KEYWORD_ONLY, (op.__name__, knob)


REDUCTIONS = [mol.logsumexp, mol.softmax, mol.max, mol.min, mol.argmax, mol.argmin, mol.norm,
              mol.log_softmax, mol.logmeanexp, mol.all, mol.any]  # fmt: skip


def test_reductions_share_the_signature_shape():
    for op in REDUCTIONS:
        params = inspect.signature(op).parameters
        assert next(iter(params.values())).kind is inspect.Parameter.POSITIONAL_ONLY
        for knob in ("axis", "width", "straight_through"):
            assert params[knob].kind is inspect.Parameter.KEYWORD_ONLY, (op.__name__, knob)


def test_every_public_function_has_a_docstring_with_examples():
    for op in [
        *OPS,
        *REDUCTIONS,
        mol.maximum,
        mol.minimum,
        mol.smooth,
        mol.error_bound,
        mol.width_for,
        mol.delta,
        mol.isclose,
        mol.logical_not,
        mol.logical_and,
        mol.logical_or,
        mol.logical_xor,
    ]:
        assert op.__doc__ and "Examples" in op.__doc__, op.__name__


@pytest.mark.parametrize("name", ["relu", "step", "floor", "logsumexp", "softmax"])
def test_numpy_bfloat16_from_ml_dtypes(name):
    # np.asarray of a JAX bfloat16 array gives NumPy's ml_dtypes bfloat16
    import ml_dtypes

    x = np.array([-1.5, -0.25, 0.0, 0.7, 2.0])
    op = getattr(mol, name)
    out = op(x.astype(ml_dtypes.bfloat16), width=0.3)
    assert out.dtype == ml_dtypes.bfloat16
    expected = op(x.astype(ml_dtypes.bfloat16).astype(np.float32), width=0.3)
    np.testing.assert_array_equal(out, expected.astype(ml_dtypes.bfloat16))


SORTING = [mol.rank, mol.sort, mol.argsort, mol.topk, mol.quantile, mol.median]


def test_the_sorting_family_shares_the_signature_shape():
    for op in SORTING:
        params = inspect.signature(op).parameters
        assert next(iter(params.values())).kind is inspect.Parameter.POSITIONAL_ONLY
        for knob in ("axis", "width", "straight_through"):
            assert params[knob].kind is inspect.Parameter.KEYWORD_ONLY, (op.__name__, knob)
        assert "Examples" in op.__doc__ and ">>>" in op.__doc__, op.__name__
