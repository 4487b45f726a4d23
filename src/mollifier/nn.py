"""PyTorch modules: every smooth op as an ``nn.Module`` with an optional learnable width.

Importing this module imports torch (extra ``torch``); ``import mollifier`` does not.

Every module takes ``kernel``, ``width``, ``learnable_width``, ``min_width``,
``per_channel`` (a width per channel along ``dim``) and ``straight_through``. The width
is stored as ``raw_width`` with ``width = min_width + softplus(raw_width)``: a learnable
width stays above its floor ``min_width`` (default ``width / 1000``) whatever step an
optimizer takes, so it can neither reach 0 nor underflow. Setting ``module.hard = True``
(or :func:`harden`) makes the forward pass the exact hard op, for inference;
:func:`set_width` and the schedules drive the fixed widths during training. Bad
arguments raise at construction (each module evaluates itself once on a tiny input, so
a kernel its op does not admit raises there), not at the first forward; the flags take
only ``True`` or ``False``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from . import _dispatch, _params
from . import _elementwise as elementwise
from . import _reductions as reductions
from . import _sorting as sorting
from . import _staircase as staircase
from ._backend import backend_of
from ._catalogue import CATALOGUE, Op
from ._engine import staircase as stairs
from ._kernels import Kernel, get_kernel
from ._params import flag, one_of, positive_real, real

MIN_WIDTH_FRACTION = 1e-3
"""Default floor of a learnable width, as a fraction of the initial width."""


def _inverse_softplus(value: float) -> float:
    # softplus(r) = w  <=>  r = w + log(-expm1(-w)), stable for small and large w
    return value + math.log(-math.expm1(-value))


def _shown(values: list[float]) -> str:
    if all(v == values[0] for v in values):
        return f"{values[0]:.4g}"
    shown = [f"{v:.4g}" for v in values]
    return "[" + ", ".join(shown if len(shown) <= 6 else [*shown[:3], "...", *shown[-2:]]) + "]"


_ONE_ELEMENT = ("raw_width", "negative_slope")
"""Parameters stored with one element (not 0-d); older checkpoints' 0-d values load."""


class SmoothModule(nn.Module):
    """Base class: holds the kernel, the (optionally learnable) width and the flags.

    Parameters
    ----------
    kernel : str or Kernel, default "logistic"
    width : float, default 0.1
        The initial width (every channel's, with ``per_channel``).
    learnable_width : bool, default False
        Make the width a parameter (``raw_width``) that optimizers train.
    min_width : float, optional
        The floor of the width: ``width = min_width + softplus(raw_width)``, so no
        gradient step can take it to ``min_width`` or below. Default ``width / 1000``
        (:data:`MIN_WIDTH_FRACTION`) for a learnable width, 0 for a fixed one.
    per_channel : int, optional
        One width per channel along ``dim`` (the input must have that many there).
    dim : int, default 1
        The channel axis for ``per_channel``; the reduced axis of reductions.
    straight_through : bool, default False
        Forward the hard op, backpropagate the smooth gradient.
    """

    supports_array_width = True
    min_width: torch.Tensor

    def __init__(
        self,
        *,
        kernel: str | Kernel = "logistic",
        width: float = 0.1,
        learnable_width: bool = False,
        min_width: float | None = None,
        per_channel: int | None = None,
        dim: int = 1,
        straight_through: bool = False,
    ) -> None:
        super().__init__()
        self.kernel = get_kernel(kernel)
        initial = positive_real(width, "width")
        learnable_width = flag(learnable_width, "learnable_width")
        straight_through = flag(straight_through, "straight_through")
        if min_width is None:
            floor = initial * MIN_WIDTH_FRACTION if learnable_width else 0.0
        else:
            floor = real(min_width, "min_width")
            if not 0.0 <= floor < initial:
                raise ValueError(
                    f"min_width must be >= 0 and below the width {initial:g}; got {floor:g}"
                )
        if learnable_width and not self.supports_array_width:
            raise ValueError(
                f"{type(self).__name__} cannot learn its width: the number of terms of a "
                "staircase is chosen from the width's value; use learnable_width=False and "
                "anneal the width with a schedule instead, or declare width_range=(lowest, "
                "widest)"
            )
        if per_channel is not None:
            if isinstance(per_channel, bool) or not isinstance(per_channel, int):
                raise TypeError(f"per_channel must be a positive int; got {per_channel!r}")
            if per_channel < 1:
                raise ValueError(f"per_channel must be a positive int; got {per_channel!r}")
            if not self.supports_array_width:
                raise ValueError(f"{type(self).__name__} needs one width (a Python number)")
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"dim must be an int; got {dim!r}")
        self.per_channel = per_channel
        self.dim = dim
        self.learnable_width = learnable_width
        self.straight_through = straight_through
        self.hard = False
        # one element rather than 0-d: FSDP2's fully_shard refuses scalar parameters
        shape = (per_channel,) if per_channel is not None else (1,)
        raw = torch.full(shape, _inverse_softplus(initial - floor), dtype=torch.get_default_dtype())
        if self.learnable_width:
            self.raw_width = nn.Parameter(raw)
        else:
            self.register_buffer("raw_width", raw)
        # a buffer, so that state_dict carries the floor with the raw width
        self.register_buffer("min_width", torch.tensor(floor, dtype=raw.dtype))
        self._admit(initial)

    @property
    def hard(self) -> bool:
        """Whether the forward pass is the exact hard op (see :func:`harden`)."""
        return self._hard

    @hard.setter
    def hard(self, value: bool) -> None:
        self._hard = flag(value, "hard")

    def _admit(self, width: float) -> None:
        """Evaluate once on a tiny input, so that what the first forward would refuse
        (a kernel the op does not admit, ...) raises at construction."""
        ndim = self.dim + 1 if self.dim >= 0 else -self.dim
        probe = torch.zeros((1,) * ndim, dtype=self.raw_width.dtype)
        knobs = {"width": width, "kernel": self.kernel, "straight_through": False}
        with torch.no_grad():
            self._evaluate(probe, knobs)

    @property
    def width(self) -> torch.Tensor:
        """The current width, ``min_width + softplus(raw_width)`` (one per channel with
        ``per_channel``).

        Where ``min_width`` is 0 the dtype's smallest normal number takes its place, so
        that a softplus that underflows (a raw value driven far below zero) still gives a
        positive width.
        """
        raw = self.raw_width
        floor = self.min_width.to(raw.dtype).clamp(min=torch.finfo(raw.dtype).tiny)
        width = nn.functional.softplus(raw) + floor
        return width if self.per_channel is not None else width.reshape(())

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any) -> None:
        # checkpoints of earlier versions hold 0-d scalar parameters: one element now
        for name in _ONE_ELEMENT:
            value = state_dict.get(prefix + name)
            if isinstance(value, torch.Tensor) and value.ndim == 0:
                state_dict[prefix + name] = value.reshape(1)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def set_width(self, value: float) -> None:
        """Set every entry of the width to ``value`` (above ``min_width``)."""
        value = positive_real(value, "width")
        floor = float(self.min_width)
        if value <= floor:
            raise ValueError(f"width must be above min_width={floor:g}; got {value:g}")
        with torch.no_grad():
            self.raw_width.fill_(_inverse_softplus(value - floor))

    def _width_for(self, x: torch.Tensor) -> Any:
        width = self.width
        if not self.supports_array_width:
            return float(width)
        if self.per_channel is None:
            return width.to(x.dtype)
        if not -x.ndim <= self.dim < x.ndim:
            raise ValueError(
                f"per_channel={self.per_channel} needs a channel axis dim={self.dim}; the "
                f"input has {x.ndim} dimension{'s' if x.ndim != 1 else ''} (shape "
                f"{tuple(x.shape)})"
            )
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
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                f"{type(self).__name__} takes a torch.Tensor; got {type(x).__name__} (the "
                "functions of mollifier take NumPy and JAX arrays)"
            )
        if self.hard:
            with torch.no_grad():
                return self._evaluate(x, self._knobs(x))
        return self._evaluate(x, self._knobs(x))

    def _evaluate(self, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        if self.raw_width.is_meta:  # deferred initialization: no values yet
            shown = "meta"
        else:
            shown = _shown(self.width.detach().reshape(-1).tolist())
        flags = [f"kernel={self.kernel.name}", f"width={shown}"]
        if self.per_channel is not None:
            flags.append(f"per_channel={self.per_channel}, dim={self.dim}")
        if self.learnable_width:
            flags.append("learnable_width=True")
        if not self.min_width.is_meta and float(self.min_width) > 0.0:
            flags.append(f"min_width={float(self.min_width):.4g}")
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
    ``a`` is learnable (``learnable_slope``) and so is the width ``sigma``, which keeps
    its floor ``min_width`` (default ``width / 1000``) at any learning rate. The slope is
    a free linear parameter, like that of ``torch.nn.PReLU``.

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
        slope = torch.tensor([real(negative_slope, "negative_slope")])  # 1 element: FSDP2
        learnable_slope = flag(learnable_slope, "learnable_slope")
        super().__init__(width=width, learnable_width=learnable_width, **knobs)
        if learnable_slope:
            self.negative_slope = nn.Parameter(slope)
        else:
            self.register_buffer("negative_slope", slope)

    def _admit(self, width: float) -> None:
        # before the slope exists: the smoothing is the kernel's ReLU
        with torch.no_grad():
            elementwise.relu(torch.zeros(1), width=width, kernel=self.kernel)

    def _evaluate(self, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        a = self.negative_slope.to(x.dtype).reshape(())
        straight_through = knobs.pop("straight_through")
        smooth = a * x + (1 - a) * elementwise.relu(x, **knobs)
        if not straight_through:
            return smooth
        # the dispatcher's straight-through: the hard leaky ReLU bit for bit, ±0 included
        hard = torch.where(x >= 0, x, a.detach() * x)
        out: torch.Tensor = _dispatch.finish(backend_of(x), smooth, smooth.dtype, hard)
        return out


class _StaircaseModule(SmoothModule):
    """A staircase: its number of terms follows the width's value, so the width is a
    Python number, unless ``width_range=(lowest, widest)`` is declared: the terms are
    then those of the widest width (accurate over the whole range), and the width may be
    learned (``learnable_width``, ``per_channel``) or annealed inside ``torch.compile``
    without recompiling; it is clamped to the range."""

    supports_array_width = False

    def __init__(self, *, width_range: tuple[float, float] | None = None, **knobs: Any) -> None:
        self.width_range = None
        if width_range is not None:
            initial = positive_real(knobs.get("width", 0.1), "width")
            self.width_range = _params.width_range(width_range, initial, stairs.RANGE_LIMITS)
            self.supports_array_width = True  # this instance: its term count is fixed
        super().__init__(**knobs)

    def _width_for(self, x: torch.Tensor) -> Any:
        width = super()._width_for(x)
        if self.width_range is None:
            return width
        return width.clamp(*self.width_range)

    def set_width(self, value: float) -> None:
        if self.width_range is not None:
            _params.width_range(self.width_range, positive_real(value, "width"), (0.0, math.inf))
        super().set_width(value)

    def extra_repr(self) -> str:
        shown = super().extra_repr()
        if self.width_range is None:
            return shown
        return f"{shown}, width_range=({self.width_range[0]:g}, {self.width_range[1]:g})"


_FIXED = (
    " The width is a Python number (anneal it with a schedule), or, with a declared"
    " ``width_range=(lowest, widest)``, a tensor that may be learned and anneals inside"
    " ``torch.compile`` without recompiling."
)


def _staircase_module(op: Op) -> type[SmoothModule]:
    function = op.smooth
    assert function is not None, f"{op.name} is not registered"

    def _evaluate(self: Any, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        return function(x, **knobs, width_range=self.width_range)

    doc = f"Module of :func:`mollifier.{op.name}`.{_FIXED}"
    return type(op.module, (_StaircaseModule,), {"_evaluate": _evaluate, "__doc__": doc})


SmoothFloor = _staircase_module(CATALOGUE["floor"])
SmoothCeil = _staircase_module(CATALOGUE["ceil"])
SmoothRound = _staircase_module(CATALOGUE["round"])
SmoothTrunc = _staircase_module(CATALOGUE["trunc"])
SmoothFrac = _staircase_module(CATALOGUE["frac"])


class SmoothQuantize(_StaircaseModule):
    """Module of :func:`mollifier.quantize` (``step``, ``offset``); the width is a Python
    number, or a learnable or annealed tensor within a declared ``width_range`` (in
    units of ``x``)."""

    def __init__(self, step: float = 1.0, offset: float = 0.0, **knobs: Any) -> None:
        self.step, self.offset = positive_real(step, "step"), real(offset, "offset")
        # the same numbers in a tuple, which torch.compile(dynamic=True) keeps constant (a
        # float attribute becomes a symbol): the term count of a width_range divides by step
        self._grid = (self.step, self.offset)
        super().__init__(**knobs)

    def _evaluate(self, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        return staircase.quantize(x, *self._grid, **knobs, width_range=self.width_range)


class _ReductionModule(SmoothModule):
    """A reduction over ``dim``; ``per_channel`` does not apply, nor does ``kernel``
    (its logsumexp has no kernel to choose) except for :class:`SmoothNorm`."""

    uses_kernel = False

    def __init__(self, dim: int = -1, **knobs: Any) -> None:
        if knobs.get("per_channel") is not None:
            raise ValueError("per_channel is not available for reductions")
        if not self.uses_kernel and "kernel" in knobs:
            raise ValueError(
                f"{type(self).__name__} takes no kernel (its logsumexp has none to choose); "
                f"got kernel={knobs['kernel']!r}"
            )
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
        self.index = flag(index, "index")
        super().__init__(dim=dim, **knobs)

    def _evaluate(self, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        knobs.pop("kernel")
        return reductions.argmax(x, axis=self.dim, index=self.index, **knobs)


class SmoothNorm(_ReductionModule):
    """Module of :func:`mollifier.norm` over ``dim`` (``ord`` as there)."""

    uses_kernel = True

    def __init__(self, ord: float = 2, dim: int = -1, **knobs: Any) -> None:
        self.ord = reductions._norm_order(ord)
        super().__init__(dim=dim, **knobs)

    def _evaluate(self, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        return reductions.norm(x, ord=self.ord, axis=self.dim, **knobs)


def smooth_modules(model: nn.Module) -> Iterator[SmoothModule]:
    """Every :class:`SmoothModule` inside ``model``."""
    return (m for m in model.modules() if isinstance(m, SmoothModule))


def scheduled(module: SmoothModule) -> bool:
    """Whether :func:`set_width` and :meth:`WidthSchedule.apply` drive ``module``'s
    width: a fixed width, one for all channels (not learnable, not per channel)."""
    return not module.learnable_width and module.per_channel is None


def set_width(model: nn.Module, value: float) -> None:
    """Set the width of every smooth module of ``model`` whose width is :func:`scheduled`.

    Learnable widths (the optimizer's) and per-channel widths (one value would erase
    the channels' differences) are left as they are; set those with
    ``module.set_width(value)``.
    """
    for module in smooth_modules(model):
        if scheduled(module):
            module.set_width(value)


def harden(model: nn.Module, hard: bool = True) -> None:
    """Switch every smooth module of ``model`` to the exact hard op (or back)."""
    hard = flag(hard, "hard")
    for module in smooth_modules(model):
        module.hard = hard


class _SortingModule(_ReductionModule):
    """An op of the sorting family along ``dim`` (``method`` and ``descending`` as
    there); the width is a fixed number (anneal it with a schedule)."""

    supports_array_width = False
    uses_kernel = True
    methods: tuple[str, ...] = ()

    def __init__(
        self, dim: int = -1, method: str | None = None, descending: bool = False, **knobs: Any
    ) -> None:
        self.method = one_of(method or self.methods[0], self.methods, "method")
        self.descending = flag(descending, "descending")
        super().__init__(dim=dim, **knobs)

    def extra_repr(self) -> str:
        flags = [f"method={self.method}", f"dim={self.dim}"]
        if self.descending:
            flags.append("descending=True")
        return ", ".join([*flags, super().extra_repr()])


class SoftRank(_SortingModule):
    """Module of :func:`mollifier.rank` along ``dim``; the width is fixed."""

    methods = sorting._RANK_METHODS

    def _evaluate(self, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        return sorting.rank(x, axis=self.dim, method=self.method, descending=self.descending,
                            **knobs)  # fmt: skip


class SoftSort(_SortingModule):
    """Module of :func:`mollifier.sort` along ``dim``; the width is fixed."""

    methods = sorting._SORT_METHODS

    def _evaluate(self, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        return sorting.sort(x, axis=self.dim, method=self.method, descending=self.descending,
                            **knobs)  # fmt: skip


class SoftTopK(_SortingModule):
    """Module of :func:`mollifier.topk` along ``dim``: returns the ``(values, mask)``
    pair; the width is fixed."""

    methods = ("l2", "kl")
    uses_kernel = False

    def __init__(self, k: int, dim: int = -1, method: str | None = None, **knobs: Any) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise TypeError(f"k must be a non-negative int; got {k!r}")
        self.k = k
        super().__init__(dim=dim, method=method, **knobs)

    def _admit(self, width: float) -> None:
        probe = torch.zeros((self.k,) * 1, dtype=self.raw_width.dtype)
        with torch.no_grad():
            sorting.topk(probe, self.k, width=width, method=self.method)

    def _evaluate(self, x: torch.Tensor, knobs: dict[str, Any]) -> sorting.TopK:  # type: ignore[override]
        knobs.pop("kernel")
        return sorting.topk(x, self.k, axis=self.dim, method=self.method, **knobs)

    def extra_repr(self) -> str:
        return f"k={self.k}, " + super().extra_repr()


class WidthSchedule:
    """Width as a function of the training step, from ``start`` to ``end`` over ``steps``.

    ``kind``: ``"constant"`` (always ``start``), ``"exponential"`` (geometric
    interpolation), ``"cosine"`` (half cosine), ``"linear"`` (straight line); after
    ``steps`` the width stays at ``end``. Call ``schedule(step)`` for the value or
    ``schedule.apply(model, step)`` to set it on every smooth module with a fixed width
    (learnable and per-channel widths are left alone).

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
        """Set the scheduled width on the smooth modules of ``model`` with a fixed width;
        returns it.

        Learnable and per-channel widths are not touched (see :func:`set_width`): a
        model may anneal its fixed widths while it learns others.
        """
        value = self(step)
        set_width(model, value)
        return value

    def __repr__(self) -> str:
        return (
            f"WidthSchedule({self.kind!r}, start={self.start}, end={self.end}, steps={self.steps})"
        )
