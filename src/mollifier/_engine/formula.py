"""Formula objects: an elementwise function and its derivative, side by side.

A :class:`Formula` is what the dispatcher hands a framework adapter: the value and the
slope as array-API code of ``(be, x)``, plus the key of a fused form an adapter may know
a cheaper way to evaluate. Adapters never look anything up by an op's name.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from .._backend import Array, Backend

Rule = Callable[..., Array]
"""``rule(be, x, width, kernel, data) -> array``: a value or a slope."""


@dataclass(frozen=True, eq=False)
class Formula:
    """``g(x)`` and ``g'(x)`` of one elementwise op at one width and kernel.

    Attributes
    ----------
    value_rule, slope_rule : callable
        ``rule(be, x, width, kernel, data)``: plain functions (no closures), so that
        ``torch.compile`` traces them like any other function.
    width : float or array
        The kernel scale.
    kernel : Kernel
    data : object
        What else the rules need (a :class:`~mollifier._engine.piecewise.Piecewise`, ...).
    fusion : hashable or None
        Key of a fused closed form an adapter may hold for this formula
        (``(shape, kernel class)``); ``None`` when there is none.
    """

    value_rule: Rule
    slope_rule: Rule
    width: Any
    kernel: Any
    data: Any = None
    fusion: Hashable | None = None

    def value(self, be: Backend, x: Array) -> Array:
        """``g(x)``."""
        return self.value_rule(be, x, self.width, self.kernel, self.data)

    def slope(self, be: Backend, x: Array) -> Array:
        """``g'(x)``; NaN where ``x`` is NaN (and so are its derivatives)."""
        return nan_where_nan(be, x, self.slope_rule(be, x, self.width, self.kernel, self.data))


def nan_where_nan(be: Backend, x: Array, out: Array) -> Array:
    """``out``, NaN where ``x`` is NaN, with every derivative NaN there as well.

    ``where(isnan(x), x, out)`` would give the right value but the derivative 1 (that
    of ``x``) at NaN. ``tanh(x)`` is NaN there with each of its derivatives, and its
    derivatives are finite everywhere else, ``±inf`` included: the branch where
    leaves unused still passes ``0 * tanh'(x)`` into a gradient, which must not be NaN.
    Where nothing will differentiate it (a torch node's backward, NumPy), ``x`` itself
    serves: ``tanh`` costs as much as 25 multiplications on the CPU.
    """
    xp = be.xp
    return xp.where(xp.isnan(x), xp.tanh(x) if be.differentiates(x) else x, out)


@dataclass(frozen=True, eq=False)
class Reduction:
    """A reduction over ``axes`` (kept as size-1 dimensions) at temperature ``width``.

    ``value_rule(be, x, axes, width)`` and ``weights_rule(be, x, axes, width)``, the
    gradient of the value with respect to ``x`` when ``output_is_weights`` is false
    (``logsumexp``: its gradient is the softmax); for ``softmax`` itself the value is
    the weights and the adapters backpropagate ``p (g - sum(g p)) / w``.
    ``width_slope_rule(be, p, axes, width)``, from those weights ``p``, is the
    derivative of the value in the width (for learnable widths): finite wherever ``p``
    is, entries at ``-inf`` or whose ``exp(x/w)`` underflows included.

    An ``output_is_weights`` reduction other than the softmax (sparsemax, entmax-1.5,
    log-softmax) gives its derivative from its output ``y`` alone:
    ``tangent_rule(be, y, t, axes, width)`` is the Jacobian times a tangent ``t`` and
    ``cotangent_rule`` the transposed Jacobian times a cotangent (the same rule when
    ``None``: the Jacobian is symmetric); both ``None`` is the softmax's
    ``p (t - sum(p t)) / w``.

    ``width_slope_of_input``: the width slope is ``width_slope_rule(be, x, axes,
    width)``, from the input rather than the weights, for a reduction whose width slope
    the weights do not determine (the p-norm, the softmax-weighted means).
    """

    value_rule: Rule
    weights_rule: Rule
    width_slope_rule: Rule
    width: Any
    output_is_weights: bool
    tangent_rule: Rule | None = None
    cotangent_rule: Rule | None = None
    width_slope_of_input: bool = False
    input_cotangent_rule: Rule | None = None
    """For an ``output_is_weights`` reduction: ``(be, x, g, axes, width) -> (y, J^T g)``,
    its output and transposed Jacobian times ``g`` from the input in one pass (one
    combine across shards), for straight-through, whose node forwards the hard value
    and never computes ``y``; ``None``: ``y`` from the value rule, then
    :meth:`output_cotangent`."""
    whole_slice: bool = False
    """Whether the value needs every entry of a slice at once (the sparse methods sort
    it): no per-shard partial results combine into it, so a DTensor's slice is gathered
    along a sharded reduced axis, and ``axis_name=`` is refused."""

    def value(self, be: Backend, x: Array, axes: tuple[int, ...]) -> Array:
        return self.value_rule(be, x, axes, self.width)

    def weights(self, be: Backend, x: Array, axes: tuple[int, ...]) -> Array:
        return self.weights_rule(be, x, axes, self.width)

    def width_slope(
        self, be: Backend, p: Array, axes: tuple[int, ...], x: Array | None = None
    ) -> Array:
        """``d value / d width`` from the weights ``p`` (from the input ``x`` where
        :attr:`width_slope_of_input`)."""
        return self.width_slope_rule(be, x if self.width_slope_of_input else p, axes, self.width)

    def output_tangent(self, be: Backend, y: Array, t: Array, axes: tuple[int, ...]) -> Array:
        """The Jacobian of an ``output_is_weights`` reduction times ``t``, from its output."""
        if self.tangent_rule is None:
            inner = be.xp.sum(y * t, axis=axes, keepdims=True)
            # y outermost: JAX transposes this into the backward pass, where t is the
            # cotangent (x itself for the softmax mean), so ct * y comes first; ct / w
            # first overflowed to inf and met y = 0 as inf * 0 (no new residual either)
            return y * ((t - inner) / self.width)
        return self.tangent_rule(be, y, t, axes, self.width)

    def input_cotangent(
        self, be: Backend, x: Array, g: Array, axes: tuple[int, ...]
    ) -> tuple[Array, Array]:
        """``(y, J^T g)`` from the input ``x`` (see :attr:`input_cotangent_rule`)."""
        if self.input_cotangent_rule is not None:
            out: tuple[Array, Array] = self.input_cotangent_rule(be, x, g, axes, self.width)
            return out
        y = self.value(be, x, axes)
        return y, self.output_cotangent(be, y, g, axes)

    def output_cotangent(self, be: Backend, y: Array, g: Array, axes: tuple[int, ...]) -> Array:
        """The transposed Jacobian times ``g``, from the output."""
        if self.cotangent_rule is None:
            return self.output_tangent(be, y, g, axes)
        return self.cotangent_rule(be, y, g, axes, self.width)


@dataclass(frozen=True, eq=False)
class Combination:
    """An elementwise function of several broadcast inputs (arrays, or Python floats that
    need no derivative), built on one single-input :class:`Formula`, e.g. the smooth
    ``maximum(a, b)`` on ReLU's or ``where(x, a, b)`` on the step's.

    ``value_rule(be, inputs, inner, data)`` and ``partials_rule(be, inputs, inner, data,
    wanted)``, the partial derivatives of the value in the inputs flagged in ``wanted``
    (``None`` for the others). ``inner`` is the formula, or what an adapter hands in its
    place: anything with its ``value(be, x)`` and ``slope(be, x)`` (a fused form).
    """

    value_rule: Rule
    partials_rule: Rule
    inner: Formula
    data: Any = None

    @property
    def width(self) -> Any:
        return self.inner.width

    def value(self, be: Backend, inputs: tuple[Any, ...], inner: Any = None) -> Array:
        return self.value_rule(be, inputs, inner or self.inner, self.data)

    def partials(
        self,
        be: Backend,
        inputs: tuple[Any, ...],
        wanted: tuple[bool, ...],
        inner: Any = None,
    ) -> tuple[Array | None, ...]:
        return tuple(self.partials_rule(be, inputs, inner or self.inner, self.data, wanted))


@dataclass(frozen=True, eq=False)
class Transform:
    """A map of rows, ``(rows, n) -> (rows, n)``, with a linear derivative of its own:
    the sorting family (soft ranks and sorts by permutahedron projection, pairwise soft
    ranks), whose forward is an algorithm (a sort, pool-adjacent-violators) that the
    frameworks should not differentiate step by step.

    ``forward_rule(be, x, data) -> (out, residuals)``, a tuple of arrays that the
    derivatives need; ``jvp_rule(be, residuals, t, data)`` and ``vjp_rule(be, residuals,
    g, data)``, the Jacobian applied to a tangent and its transpose to a cotangent, both
    linear in ``t`` and ``g`` and written with array-API operations (so JAX transposes
    the first, and torch differentiates the second once more where it can).
    """

    forward_rule: Rule
    jvp_rule: Rule
    vjp_rule: Rule
    data: Any = None
    stepwise: bool = False
    """Whether the forward is a loop of many small steps (pool-adjacent-violators), which
    an eager framework on the CPU runs faster through NumPy."""

    def forward(self, be: Backend, x: Array) -> tuple[Array, tuple[Array, ...]]:
        out, residuals = self.forward_rule(be, x, self.data)
        return out, tuple(residuals)

    def value(self, be: Backend, x: Array) -> Array:
        return self.forward(be, x)[0]

    def jvp(self, be: Backend, residuals: tuple[Array, ...], t: Array) -> Array:
        return self.jvp_rule(be, residuals, t, self.data)

    def vjp(self, be: Backend, residuals: tuple[Array, ...], g: Array) -> Array:
        return self.vjp_rule(be, residuals, g, self.data)
