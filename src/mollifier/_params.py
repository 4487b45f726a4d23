"""Validation of the scalar knobs shared by every op (``width``, ``tol``)."""

from __future__ import annotations

import math
import numbers
from typing import Any


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
        ):
            value = float(value)
        else:
            raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"{name} must be a finite positive number; got {value!r}")
    return value


def real(value: Any, name: str) -> float:
    """Return a finite real Python float, or raise naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value!r}")
    return value


def width_or_tol(width: Any, tol: Any) -> tuple[float | None, float | None]:
    """Validate that exactly one of ``width`` and ``tol`` is given."""
    if width is not None and tol is not None:
        raise ValueError("give either width= or tol=, not both")
    if width is None and tol is None:
        raise ValueError(
            "give width= (the kernel's scale, in units of x; larger is smoother) or tol= "
            "(the largest sup error allowed, which picks the width)"
        )
    if width is not None:
        return positive_real(width, "width"), None
    return None, positive_real(tol, "tol")
