"""Sup-norm error bounds and the widths that meet a tolerance.

Two kinds of op:

* continuous, ``L``-Lipschitz: ``sup |f * k_w - f| <= L * w * E|U|`` (sharper constants
  where the kink structure is known, e.g. ReLU ``w E|U| / 2``); ``tol`` maps to a width;
* with jumps of height ``h``: the smoothed value at a jump is the midpoint, so the sup
  error is ``h / 2`` whatever the width; no width meets a smaller tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._backend import memoize
from ._kernels import Kernel, get_kernel
from ._params import positive_real, real


@dataclass(frozen=True)
class Bound:
    """``sup |smooth - hard| <= constant + slope * width`` (``jump`` true if constant > 0)."""

    slope: float
    constant: float = 0.0
    description: str = ""

    def at(self, width: float) -> float:
        return self.constant + (self.slope * width if self.slope else 0.0)


@memoize
def _gate_constant(kernel: Kernel) -> float:
    """``sup_{s >= 0} s K(-s)``: the product form ``x K(x / w)`` misses ReLU by ``w`` times it."""
    if kernel.name == "cauchy":  # s arctan(1/s)/pi increases to 1/pi
        return 1.0 / math.pi
    s = np.linspace(0.0, 60.0, 600001)
    values = s * np.asarray(kernel.cdf(-s))
    return float(values.max()) * (1.0 + 1e-9)


def _lipschitz(op: str, kernel: Kernel, factor: float, what: str) -> Bound:
    if not math.isfinite(kernel.mean_abs) and op != "clip":
        raise ValueError(
            f"kernel='{kernel.name}' diverges for {op}: it grows like |x| and the kernel has "
            "no mean (E|U| = inf)"
        )
    return Bound(slope=factor * kernel.mean_abs, description=what)


def _jump(height: float, op: str) -> Bound:
    return Bound(
        slope=0.0,
        constant=height / 2.0,
        description=f"{op} jumps by {height:g}: the smoothed value at a jump is the midpoint",
    )


def op_bound(op: Any, kernel: Kernel, params: dict[str, Any]) -> Bound:
    """The error bound of a named op (or a :class:`Piecewise`) with these parameters."""
    from ._piecewise import Piecewise

    if isinstance(op, Piecewise):
        jumps = sum(abs(h) for h in op.value_jumps())
        lipschitz = op.lipschitz()
        slope = lipschitz * kernel.mean_abs if lipschitz else 0.0
        return Bound(slope=slope, constant=jumps / 2.0, description="sum |jumps|/2 + L w E|U|")
    if op in ("relu", "hinge"):
        return _lipschitz(op, kernel, 0.5, "w E|U| / 2 (one kink of slope change 1)")
    if op == "abs":
        return _lipschitz(op, kernel, 1.0, "w E|U| (one kink of slope change 2)")
    if op == "leaky_relu":
        a = real(params.get("negative_slope", 0.01), "negative_slope")
        return _lipschitz(op, kernel, 0.5 * abs(1.0 - a), "|1 - a| w E|U| / 2")
    if op == "clip":
        return _lipschitz(op, kernel, 1.0, "w E|U| (two kinks; w E|U|/2 when they are apart)")
    if op in ("step", "heaviside", "greater", "less", "floor", "ceil", "round", "frac"):
        return _jump(1.0, op)
    if op == "trunc":  # floor + theta(-x): each error is at most 1/2
        return Bound(
            slope=0.0,
            constant=1.0,
            description="trunc = floor + step(-x) jumps by 1; the two errors add to at most 1",
        )
    if op == "sign":
        return _jump(2.0, op)
    if op == "quantize":
        return _jump(positive_real(params.get("step", 1.0), "step"), op)
    if op in ("gelu", "swish"):
        return Bound(
            slope=_gate_constant(kernel),
            description="x K(x/w) misses ReLU by at most w sup_s s K(-s)",
        )
    if op in ("delta", "equal", "where"):
        raise ValueError(
            f"{op} has no sup-norm error bound: "
            + (
                "the nascent delta converges to a distribution, not a function"
                if op == "delta"
                else "its hard counterpart is discontinuous with data-dependent jumps"
            )
        )
    raise ValueError(f"op must be one of {sorted(OPS_WITH_BOUNDS)} or a Piecewise; got {op!r}")


OPS_WITH_BOUNDS = (
    "abs", "ceil", "clip", "floor", "frac", "gelu", "greater", "heaviside", "hinge",
    "leaky_relu", "less", "quantize", "relu", "round", "sign", "step", "swish", "trunc",
)  # fmt: skip


def _op_name(op: Any) -> Any:
    return getattr(op, "__name__", op) if callable(op) and not hasattr(op, "jumps") else op


def error_bound(
    op: Any, *, kernel: str | Kernel = "logistic", width: float, **params: Any
) -> float:
    """Sup-norm error of ``op`` smoothed by ``kernel`` at ``width``.

    Parameters
    ----------
    op : str, callable or Piecewise
        An op name (``"relu"``), the op itself (``mol.relu``) or a :class:`Piecewise`.
    kernel : str or Kernel
        The smoothing kernel.
    width : float
        The kernel scale, in units of ``x``.
    **params
        Op parameters that change the bound (``negative_slope``, ``step``).

    Returns
    -------
    float
        An upper bound on ``sup_x |smooth(x) - op(x)|``. For a Lipschitz op it is
        ``L * width * E|U|`` (or a sharper constant); for an op with jumps of height
        ``h`` it is ``h / 2`` (at the jump), whatever the width. ``inf`` when the kernel
        has no mean (Cauchy) and the op is only known to be Lipschitz (clip).

    Examples
    --------
    >>> import mollifier as mol
    >>> mol.error_bound("relu", kernel="logistic", width=0.1)  # 0.1 * 2 log 2 / 2
    0.06931471805599453
    """
    k = get_kernel(kernel)
    w = positive_real(width, "width")
    return op_bound(_op_name(op), k, params).at(w)


def width_for(op: Any, *, kernel: str | Kernel = "logistic", tol: float, **params: Any) -> float:
    """The largest width whose documented sup error is at most ``tol``.

    Raises
    ------
    ValueError
        When no width meets ``tol``: the op jumps (its sup error is half the jump at
        every width), or the bound is infinite for this kernel.

    Examples
    --------
    >>> import mollifier as mol
    >>> mol.width_for("abs", kernel="uniform", tol=1e-3)  # tol / E|U|, E|U| = 1/2
    0.002
    """
    k = get_kernel(kernel)
    t = positive_real(tol, "tol")
    name = _op_name(op)
    bound = op_bound(name, k, params)
    if bound.constant > 0.0:
        if bound.constant <= t and bound.slope == 0.0:
            raise ValueError(
                f"tol={t:g} does not fix a width for {name}: {bound.description}, so its sup "
                f"error is {bound.constant:g} at every width; pass width= instead"
            )
        raise ValueError(
            f"no width meets tol={t:g} for {name}: {bound.description}, so the sup error is "
            f"at least {bound.constant:g} at every width; pass width= instead (away from a "
            "jump at distance d the error decays like the kernel tail K(-d/w))"
        )
    if not math.isfinite(bound.slope) or bound.slope == 0.0:
        raise ValueError(
            f"no finite error bound for {name} with kernel='{k.name}' (E|U| = inf); pass "
            "width= instead"
        )
    return t / bound.slope
