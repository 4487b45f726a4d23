"""Shared fixtures: one ``backend`` fixture over NumPy, PyTorch and JAX.

A missing backend is an error, not a skip: CI must exercise all three.
"""

from __future__ import annotations

import collections
import json
import os

import jax
import numpy as np
import pytest
import torch

jax.config.update("jax_enable_x64", True)

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # pytest -n N: the cores shared, not each
    torch.set_num_threads(
        max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    )

import jax.numpy as jnp  # noqa: E402

BACKENDS = ("numpy", "torch", "jax")


def to_backend(name: str, values, dtype: str = "float64"):
    array = np.asarray(values, dtype=np.float64)
    if name == "numpy":
        return array.astype(dtype)
    if name == "torch":
        return torch.tensor(array, dtype=getattr(torch, dtype))
    return jnp.asarray(array, dtype=getattr(jnp, dtype))


def to_numpy(array) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().to(torch.float64).numpy()
    return np.asarray(array, dtype=np.float64)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


def _ops():
    """Every single-input op of the catalogue at its example parameters."""
    from mollifier._catalogue import referenced

    return {name: op.example for name, op in referenced().items()}


OPS = _ops()


def admits(op: str, kernel: str) -> bool:
    """Whether ``op`` has a finite value with ``kernel`` (ReLU and the Cauchy kernel do not)."""
    import mollifier as mol
    from mollifier._catalogue import CATALOGUE

    return CATALOGUE[op].admits(mol.kernels[kernel])


def finite_mean_kernels() -> list[str]:
    import math

    import mollifier as mol

    return [k for k in sorted(mol.kernels) if math.isfinite(mol.kernels[k].mean_abs)]


def op_kernel_pairs():
    import mollifier as mol

    return [(o, k) for o in OPS for k in sorted(mol.kernels) if admits(o, k)]


# -- the fuzz suite (tests/test_fuzz.py) --------------------------------------------------

FUZZ_LONG = False
"""Whether this run selected the long fuzz profile (``pytest -m fuzz``)."""
FUZZ_CASES: collections.Counter[str] = collections.Counter()
"""Cases run per fuzz property, reported at the end of the session."""


def _selects_only_fuzz(markexpr: str) -> bool:
    """Whether ``-m markexpr`` keeps the fuzz tests and drops unmarked ones."""
    if not markexpr:
        return False
    try:
        from _pytest.mark.expression import Expression

        compiled = Expression.compile(markexpr)

        def with_marks(*names: str):
            return lambda name, **kwargs: name in names

        return compiled.evaluate(with_marks("fuzz")) and not compiled.evaluate(with_marks())
    except Exception:  # pytest moved its private expression parser: read the words
        return markexpr.split() == ["fuzz"]


def pytest_configure(config):
    global FUZZ_LONG
    FUZZ_LONG = _selects_only_fuzz(config.getoption("markexpr", "") or "")


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: hand the counts to the controller
        workeroutput["fuzz_cases"] = dict(FUZZ_CASES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    FUZZ_CASES.update(getattr(node, "workeroutput", {}).get("fuzz_cases", {}))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not FUZZ_CASES:
        return
    profile = "long" if FUZZ_LONG else "ci"
    terminalreporter.section(f"fuzz cases per property ({profile} profile)")
    for name, count in sorted(FUZZ_CASES.items()):
        terminalreporter.write_line(f"{name:>18}: {count}")
    terminalreporter.write_line(f"{'total':>18}: {sum(FUZZ_CASES.values())}")
    path = os.environ.get("MOLLIFIER_FUZZ_COUNTS")
    if path:
        with open(path, "w") as out:
            json.dump({"profile": profile, "cases": dict(FUZZ_CASES)}, out, indent=1)
