"""Validation of the scalar knobs shared by every op (``width``, ``tol``, the flags)."""

from __future__ import annotations

import math
import numbers
import sys
from typing import Any

import numpy as np

from ._backend import known_values


def flag(value: Any, name: str) -> bool:
    """Return ``value`` as a Python bool, or raise ``TypeError`` naming the argument.

    Every boolean knob (``straight_through``, ``keepdims``, ``index``,
    ``learnable_width``, ...) takes ``True`` or ``False`` (a NumPy ``bool_`` too) and
    nothing else: a truthy string such as ``"no"`` or a number is refused rather than
    read as true.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False; got {value!r}")


def _real_dtype(value: Any) -> bool:
    """Whether an array ``value`` holds real numbers (integers or floats, not bool,
    complex, strings or objects)."""
    dtype = getattr(value, "dtype", None)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(dtype, torch.dtype):
        return dtype != torch.bool and not dtype.is_complex
    if not isinstance(dtype, np.dtype):
        return False
    # JAX's bfloat16 and float8 types are NumPy extension dtypes of kind "V"
    return dtype.kind in "iuf" or (dtype.kind == "V" and "float" in dtype.name)


def positive_real(value: Any, name: str) -> float:
    """Return ``value`` as a Python float, or raise naming the argument.

    Raises
    ------
    TypeError
        If ``value`` is not a real number (booleans and arrays with more than one
        element included).
    ValueError
        If it is not finite or not strictly positive.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if (
            hasattr(value, "shape")
            and getattr(value, "size", None) == 1
            and not hasattr(value, "requires_grad")
            and _real_dtype(value)
        ):
            value = float(value)
        else:
            raise TypeError(f"{name} must be a real number; got {_describe(value)}")
    value = float(value)
    if not 0.0 < value < math.inf:  # comparisons: torch.compile(dynamic=True) traces floats
        raise ValueError(f"{name} must be a finite positive number; got {value!r}")
    return value


def _describe(value: Any) -> str:
    dtype = getattr(value, "dtype", None)
    return type(value).__name__ if dtype is None else f"{type(value).__name__} of dtype {dtype}"


def real(value: Any, name: str) -> float:
    """Return a finite real Python float, or raise naming the argument."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    value = float(value)
    if not -math.inf < value < math.inf:  # comparisons, as in positive_real
        raise ValueError(f"{name} must be finite; got {value!r}")
    return value


def _is_array(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.ndim > 0
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return True
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(value, jax.Array)


def positive_width(value: Any) -> Any:
    """A Python float, or an array of widths (learnable widths, one per channel, ...).

    Arrays are checked for positivity whenever their values are concrete and cheap to
    read (NumPy, eager CPU torch, JAX outside a trace); inside ``jax.jit`` or
    ``torch.compile``, and on a GPU, they are not inspected and must be kept positive by
    the caller (e.g. a softplus parametrization, as in :mod:`mollifier.nn`).
    """
    if not _is_array(value):
        return positive_real(value, "width")
    if not _real_dtype(value):
        raise TypeError(f"width must be a real number or an array of them; got {_describe(value)}")
    concrete = known_values(value)
    if concrete is not None and not bool(np.all(np.isfinite(concrete) & (concrete > 0))):
        raise ValueError("width must hold finite positive numbers")
    return value


def width_or_tol(width: Any, tol: Any) -> tuple[Any, float | None]:
    """Validate that exactly one of ``width`` and ``tol`` is given.

    The width comes back as a Python float or, for array widths, the array itself.
    """
    if width is not None and tol is not None:
        raise ValueError("give either width= or tol=, not both")
    if width is None and tol is None:
        raise ValueError(
            "give width= (the kernel's scale, in units of x; larger is smoother) or tol= "
            "(the largest sup error allowed, which picks the width)"
        )
    if width is not None:
        return positive_width(width), None
    return None, positive_real(tol, "tol")


def require_float_width(width: Any, what: str) -> float:
    """Raise ``TypeError`` for an array width where only a Python float works."""
    if not isinstance(width, float):
        raise TypeError(
            f"{what} needs width= as a Python number: its number of terms is chosen from "
            "the width's value"
        )
    return width


def one_of(value: Any, allowed: tuple[str, ...], name: str) -> str:
    """Return ``value`` if it is one of the strings ``allowed``, or raise naming it."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def count(value: Any, default: int, name: str, minimum: int) -> int:
    """An integer knob: ``default`` for ``None``, else an int ``>= minimum``."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def width_range(value: Any, width: Any, limits: tuple[float, float]) -> tuple[float, float]:
    """A declared ``(lowest, widest)`` width range, validated, with ``width`` in it.

    Raises ``TypeError`` for anything but a pair of real numbers, ``ValueError`` for a
    pair that is not ``0 < lowest < widest`` within ``limits``, or for a width (a
    number, or an array whose values can be read) outside the range.
    """
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise TypeError(f"width_range must be a pair (lowest, widest); got {value!r}")
    lo, hi = positive_real(value[0], "width_range[0]"), positive_real(value[1], "width_range[1]")
    if not limits[0] <= lo < hi <= limits[1]:
        raise ValueError(
            f"width_range must satisfy {limits[0]:g} <= lowest < widest <= {limits[1]:g}; "
            f"got ({lo:g}, {hi:g})"
        )
    values = np.asarray(width) if isinstance(width, float) else None
    if values is None and _is_array(width):
        values = known_values(width)
    if values is not None and not bool(np.all((values >= lo) & (values <= hi))):
        raise ValueError(f"width must lie in width_range=({lo:g}, {hi:g})")
    return lo, hi
