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
