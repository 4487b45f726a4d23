"""PyTorch modules: every smooth op as an ``nn.Module`` with an optional learnable width.

Importing this module imports torch (extra ``torch``); ``import mollifier`` does not.

Every module takes ``kernel``, ``width``, ``learnable_width``, ``per_channel`` (a width
per channel along ``dim``) and ``straight_through``. A learnable width is stored as
``raw`` with ``width = softplus(raw)``, so gradient steps cannot make it non-positive.
Setting ``module.hard = True`` (or :func:`harden`) makes the forward pass the exact hard
op, for inference; :func:`set_width` and the schedules drive the width during training.
Bad arguments raise at construction, not at the first forward.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from . import _dispatch
from . import _elementwise as elementwise
from . import _reductions as reductions
from . import _staircase as staircase
from ._backend import backend_of
from ._catalogue import CATALOGUE, Op
from ._kernels import Kernel, get_kernel
from ._params import positive_real, real


def _inverse_softplus(value: float) -> float:
    # softplus(r) = w  <=>  r = w + log(-expm1(-w)), stable for small and large w
    return value + math.log(-math.expm1(-value))


class SmoothModule(nn.Module):
    """Base class: holds the kernel, the (optionally learnable) width and the flags."""

    supports_array_width = True

    def __init__(
        self,
        *,
        kernel: str | Kernel = "logistic",
        width: float = 0.1,
        learnable_width: bool = False,
        per_channel: int | None = None,
        dim: int = 1,
        straight_through: bool = False,
    ) -> None:
        super().__init__()
        self.kernel = get_kernel(kernel)
        initial = positive_real(width, "width")
        if learnable_width and not self.supports_array_width:
            raise ValueError(
                f"{type(self).__name__} cannot learn its width: the number of terms of a "
                "staircase is chosen from the width's value; use learnable_width=False and "
                "anneal the width with a schedule instead"
            )
        if per_channel is not None:
            if isinstance(per_channel, bool) or not isinstance(per_channel, int) or per_channel < 1:
                raise ValueError(f"per_channel must be a positive int; got {per_channel!r}")
            if not self.supports_array_width:
                raise ValueError(f"{type(self).__name__} needs one width (a Python number)")
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"dim must be an int; got {dim!r}")
        self.per_channel = per_channel
        self.dim = dim
        self.learnable_width = bool(learnable_width)
        self.straight_through = bool(straight_through)
        self.hard = False
        shape = (per_channel,) if per_channel is not None else ()
        raw = torch.full(shape, _inverse_softplus(initial), dtype=torch.get_default_dtype())
        if self.learnable_width:
            self.raw_width = nn.Parameter(raw)
        else:
            self.register_buffer("raw_width", raw)

    @property
    def width(self) -> torch.Tensor:
        """The current width, ``softplus(raw_width)`` (one per channel with ``per_channel``).

        The dtype's smallest normal number is added so that a softplus that underflows
        (a raw value driven far below zero) still gives a positive width.
        """
        raw = self.raw_width
        return nn.functional.softplus(raw) + torch.finfo(raw.dtype).tiny

    def set_width(self, value: float) -> None:
        """Set every entry of the width to ``value`` (used by the annealing schedules)."""
        value = positive_real(value, "width")
        with torch.no_grad():
            self.raw_width.fill_(_inverse_softplus(value))

    def _width_for(self, x: torch.Tensor) -> Any:
        width = self.width
        if not self.supports_array_width:
            return float(width)
        if self.per_channel is None:
            return width.to(x.dtype)
        axis = self.dim % x.ndim
        if x.shape[axis] != self.per_channel:
            raise ValueError(
                f"per_channel={self.per_channel} but the input has {x.shape[axis]} channels "
                f"along dim={self.dim}"
            )
        shape = [1] * x.ndim
        shape[axis] = self.per_channel
        return width.to(x.dtype).reshape(shape)

    def _knobs(self, x: torch.Tensor) -> dict[str, Any]:
        return {
            "width": self._width_for(x),
            "kernel": self.kernel,
            "straight_through": self.straight_through or self.hard,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hard:
            with torch.no_grad():
                return self._evaluate(x, self._knobs(x))
        return self._evaluate(x, self._knobs(x))

    def _evaluate(self, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        width = self.width.detach()
        shown = f"{float(width):.4g}" if width.ndim == 0 else f"per_channel={self.per_channel}"
        flags = [f"kernel={self.kernel.name}", f"width={shown}"]
        if self.learnable_width:
            flags.append("learnable_width=True")
        if self.straight_through:
            flags.append("straight_through=True")
        if self.hard:
            flags.append("hard=True")
        return ", ".join(flags)


def _elementwise_module(
    op: Op, note: str = "", base: type[SmoothModule] = SmoothModule
) -> type[SmoothModule]:
    """The module class of a catalogue entry without parameters: its forward is
    ``op.smooth(x, width=..., kernel=..., straight_through=...)``; its name is the entry's."""
    function = op.smooth
    assert function is not None, f"{op.name} is not registered"

    def _evaluate(self: SmoothModule, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        return function(x, **knobs)

    doc = f"Module of :func:`mollifier.{op.name}`.{note}"
    return type(op.module, (base,), {"_evaluate": _evaluate, "__doc__": doc})


SmoothStep = _elementwise_module(CATALOGUE["step"])
SmoothSign = _elementwise_module(CATALOGUE["sign"])
SmoothReLU = _elementwise_module(CATALOGUE["relu"])
SmoothAbs = _elementwise_module(CATALOGUE["abs"])
SmoothGELU = _elementwise_module(CATALOGUE["gelu"], " Pass kernel='gaussian' for the GELU.")
SmoothSwish = _elementwise_module(CATALOGUE["swish"])


class SmoothLeakyReLU(SmoothModule):
    """Module of :func:`mollifier.leaky_relu` with a fixed slope (see :class:`SAU` to learn it)."""

    def __init__(self, negative_slope: float = 0.01, **knobs: Any) -> None:
        self.negative_slope = real(negative_slope, "negative_slope")
        super().__init__(**knobs)

    def _evaluate(self, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        return elementwise.leaky_relu(x, self.negative_slope, **knobs)


class SmoothClip(SmoothModule):
    """Module of :func:`mollifier.clip` to ``[lower, upper]``."""

    def __init__(self, lower: float, upper: float, **knobs: Any) -> None:
        self.lower, self.upper = real(lower, "lower"), real(upper, "upper")
        if not self.lower < self.upper:
            raise ValueError(f"clip needs lower < upper; got {lower}, {upper}")
        super().__init__(**knobs)

    def _evaluate(self, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        return elementwise.clip(x, self.lower, self.upper, **knobs)


class SmoothHinge(SmoothModule):
    """Module of :func:`mollifier.hinge`, ``max(0, margin - x)`` smoothed."""

    def __init__(self, margin: float = 1.0, **knobs: Any) -> None:
        self.margin = real(margin, "margin")
        super().__init__(**knobs)

    def _evaluate(self, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        return elementwise.hinge(x, self.margin, **knobs)


class SAU(SmoothModule):
    r"""SAU activation: leaky ReLU convolved with a Gaussian, exactly.

    :math:`\mathrm{SAU}(x) = a x + (1 - a)\,\mathrm{relu}_\sigma(x)` with
    :math:`\mathrm{relu}_\sigma(x) = x\Phi(x/\sigma) + \sigma\varphi(x/\sigma)`; the slope
    ``a`` is learnable (``learnable_slope``) and so is the width ``sigma``.

    References
    ----------
    Biswas et al. (2021), "SAU: Smooth activation function using convolution with
    approximate identities", arXiv:2109.13210. Full entries: [References][references].
    """

    def __init__(
        self,
        negative_slope: float = 0.01,
        *,
        width: float = 1.0,
        learnable_slope: bool = True,
        learnable_width: bool = True,
        **knobs: Any,
    ) -> None:
        knobs.setdefault("kernel", "gaussian")
        super().__init__(width=width, learnable_width=learnable_width, **knobs)
        slope = torch.tensor(real(negative_slope, "negative_slope"))
        if learnable_slope:
            self.negative_slope = nn.Parameter(slope)
        else:
            self.register_buffer("negative_slope", slope)

    def _evaluate(self, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        a = self.negative_slope.to(x.dtype)
        straight_through = knobs.pop("straight_through")
        smooth = a * x + (1 - a) * elementwise.relu(x, **knobs)
        if not straight_through:
            return smooth
        # the dispatcher's straight-through: the hard leaky ReLU bit for bit, ±0 included
        hard = torch.where(x >= 0, x, a.detach() * x)
        out: torch.Tensor = _dispatch.finish(backend_of(x), smooth, smooth.dtype, hard)
        return out


class _StaircaseModule(SmoothModule):
    supports_array_width = False


_FIXED = " The width is a fixed number (anneal it with a schedule); it cannot be learned."


def _staircase_module(op: Op) -> type[SmoothModule]:
    return _elementwise_module(op, _FIXED, base=_StaircaseModule)


SmoothFloor = _staircase_module(CATALOGUE["floor"])
SmoothCeil = _staircase_module(CATALOGUE["ceil"])
SmoothRound = _staircase_module(CATALOGUE["round"])
SmoothTrunc = _staircase_module(CATALOGUE["trunc"])
SmoothFrac = _staircase_module(CATALOGUE["frac"])


class SmoothQuantize(_StaircaseModule):
    """Module of :func:`mollifier.quantize` (``step``, ``offset``); the width is fixed."""

    def __init__(self, step: float = 1.0, offset: float = 0.0, **knobs: Any) -> None:
        self.step, self.offset = positive_real(step, "step"), real(offset, "offset")
        super().__init__(**knobs)

    def _evaluate(self, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        return staircase.quantize(x, self.step, self.offset, **knobs)


class _ReductionModule(SmoothModule):
    """A reduction over ``dim``; ``per_channel`` does not apply."""

    def __init__(self, dim: int = -1, **knobs: Any) -> None:
        if knobs.get("per_channel") is not None:
            raise ValueError("per_channel is not available for reductions")
        super().__init__(dim=dim, **knobs)


class SmoothMax(_ReductionModule):
    """Module of :func:`mollifier.max` over ``dim`` (``method`` as there)."""

    def __init__(self, dim: int = -1, method: str = "logsumexp", **knobs: Any) -> None:
        reductions._check_method(method)
        self.method = method
        super().__init__(dim=dim, **knobs)

    def _evaluate(self, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        knobs.pop("kernel")
        return reductions.max(x, axis=self.dim, method=self.method, **knobs)


class SmoothMin(SmoothMax):
    """Module of :func:`mollifier.min` over ``dim``."""

    def _evaluate(self, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        knobs.pop("kernel")
        return reductions.min(x, axis=self.dim, method=self.method, **knobs)


class SmoothLogSumExp(_ReductionModule):
    """Module of :func:`mollifier.logsumexp` over ``dim``."""

    def _evaluate(self, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        knobs.pop("kernel")
        return reductions.logsumexp(x, axis=self.dim, **knobs)


class SmoothSoftmax(_ReductionModule):
    """Module of :func:`mollifier.softmax` over ``dim`` (temperature = width)."""

    def _evaluate(self, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        knobs.pop("kernel")
        return reductions.softmax(x, axis=self.dim, **knobs)


class SmoothArgmax(_ReductionModule):
    """Module of :func:`mollifier.argmax` over ``dim`` (``index=True``: expected index)."""

    def __init__(self, dim: int = -1, index: bool = False, **knobs: Any) -> None:
        self.index = bool(index)
        super().__init__(dim=dim, **knobs)

    def _evaluate(self, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        knobs.pop("kernel")
        return reductions.argmax(x, axis=self.dim, index=self.index, **knobs)


class SmoothNorm(_ReductionModule):
    """Module of :func:`mollifier.norm` over ``dim`` (``ord`` as there)."""

    def __init__(self, ord: float = 2, dim: int = -1, **knobs: Any) -> None:
        if not (ord == 0 or ord == math.inf or (isinstance(ord, (int, float)) and ord > 0)):
            raise ValueError(f"ord must be 0, a positive number or inf; got {ord!r}")
        self.ord = ord
        super().__init__(dim=dim, **knobs)

    def _evaluate(self, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        return reductions.norm(x, ord=self.ord, axis=self.dim, **knobs)


def smooth_modules(model: nn.Module) -> Iterator[SmoothModule]:
    """Every :class:`SmoothModule` inside ``model``."""
    return (m for m in model.modules() if isinstance(m, SmoothModule))


def set_width(model: nn.Module, value: float) -> None:
    """Set the width of every smooth module in ``model``."""
    for module in smooth_modules(model):
        module.set_width(value)


def harden(model: nn.Module, hard: bool = True) -> None:
    """Switch every smooth module of ``model`` to the exact hard op (or back)."""
    for module in smooth_modules(model):
        module.hard = bool(hard)


class WidthSchedule:
    """Width as a function of the training step, from ``start`` to ``end`` over ``steps``.

    ``kind``: ``"constant"`` (always ``start``), ``"exponential"`` (geometric
    interpolation), ``"cosine"`` (half cosine), ``"linear"`` (straight line); after
    ``steps`` the width stays at ``end``. Call ``schedule(step)`` for the value or
    ``schedule.apply(model, step)`` to set it on every smooth module.

    Examples
    --------
    >>> from mollifier.nn import WidthSchedule
    >>> s = WidthSchedule("exponential", start=1.0, end=0.01, steps=100)
    >>> s(0), round(s(50), 6), s(100), s(1000)
    (1.0, 0.1, 0.01, 0.01)
    """

    KINDS = ("constant", "exponential", "cosine", "linear")

    def __init__(
        self, kind: str, *, start: float, end: float | None = None, steps: int = 1
    ) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {list(self.KINDS)}; got {kind!r}")
        self.kind = kind
        self.start = positive_real(start, "start")
        self.end = positive_real(end if end is not None else start, "end")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive int; got {steps!r}")
        self.steps = steps

    def __call__(self, step: int) -> float:
        fraction = min(max(step / self.steps, 0.0), 1.0)
        if self.kind == "constant":
            return self.start
        if self.kind == "exponential":
            return self.start * (self.end / self.start) ** fraction
        if self.kind == "cosine":
            return self.end + 0.5 * (self.start - self.end) * (1 + math.cos(math.pi * fraction))
        return self.start + (self.end - self.start) * fraction

    def apply(self, model: nn.Module, step: int) -> float:
        """Set the scheduled width on every smooth module of ``model``; returns it."""
        value = self(step)
        set_width(model, value)
        return value

    def __repr__(self) -> str:
        return (
            f"WidthSchedule({self.kind!r}, start={self.start}, end={self.end}, steps={self.steps})"
        )
