"""Shared fixtures: one ``backend`` fixture over NumPy, PyTorch and JAX.

A missing backend is an error, not a skip: CI must exercise all three.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch

jax.config.update("jax_enable_x64", True)

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
    import mollifier as mol

    return {
        "step": mol.step,
        "sign": mol.sign,
        "relu": mol.relu,
        "leaky_relu": lambda x, **k: mol.leaky_relu(x, 0.1, **k),
        "abs": mol.abs,
        "clip": lambda x, **k: mol.clip(x, -1.0, 2.0, **k),
        "hinge": mol.hinge,
        "floor": mol.floor,
        "ceil": mol.ceil,
        "round": mol.round,
        "trunc": mol.trunc,
        "frac": mol.frac,
        "quantize": lambda x, **k: mol.quantize(x, 0.25, 0.1, **k),
        "gelu": mol.gelu,
        "swish": mol.swish,
    }


OPS = _ops()
GROWING = {"relu", "leaky_relu", "abs", "hinge"}  # diverge with the Cauchy kernel


def op_kernel_pairs():
    import mollifier as mol

    return [
        (o, k) for o in OPS for k in sorted(mol.kernels) if not (k == "cauchy" and o in GROWING)
    ]
