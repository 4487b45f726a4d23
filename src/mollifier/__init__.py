"""mollifier: smooth, differentiable versions of non-smooth functions with a known error.

Every op takes a NumPy, PyTorch or JAX array first and keyword-only knobs: ``width``
(the kernel scale in units of x, larger is smoother) or ``tol`` (the sup error that
picks the width), ``kernel`` and ``straight_through``.
"""

from ._bounds import error_bound, width_for
from ._elementwise import (
    abs,
    clip,
    delta,
    equal,
    gelu,
    greater,
    heaviside,
    hinge,
    leaky_relu,
    less,
    relu,
    sign,
    step,
    swish,
    where,
)
from ._engine.numerical import AccuracyWarning
from ._engine.piecewise import Piecewise
from ._kernels import Kernel, get_kernel, kernels
from ._logic import all, any, isclose, logical_and, logical_not, logical_or, logical_xor
from ._reductions import (
    argmax,
    argmin,
    log_softmax,
    logmeanexp,
    logsumexp,
    max,
    maximum,
    min,
    minimum,
    norm,
    softmax,
)
from ._smooth import fenchel_young_loss, smooth
from ._sorting import argsort, median, quantile, rank, sort, topk
from ._staircase import ceil, floor, frac, quantize, round, trunc

__version__ = "0.1.0"

__all__ = [
    "AccuracyWarning",
    "Kernel",
    "Piecewise",
    "abs",
    "all",
    "any",
    "argmax",
    "argmin",
    "argsort",
    "ceil",
    "clip",
    "delta",
    "equal",
    "error_bound",
    "fenchel_young_loss",
    "floor",
    "frac",
    "gelu",
    "get_kernel",
    "greater",
    "heaviside",
    "hinge",
    "isclose",
    "kernels",
    "leaky_relu",
    "less",
    "log_softmax",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "logmeanexp",
    "logsumexp",
    "max",
    "maximum",
    "median",
    "min",
    "minimum",
    "norm",
    "quantile",
    "quantize",
    "rank",
    "relu",
    "round",
    "sign",
    "smooth",
    "softmax",
    "sort",
    "step",
    "swish",
    "topk",
    "trunc",
    "where",
    "width_for",
]
