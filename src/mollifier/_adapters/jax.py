"""The JAX adapter: ``jax.custom_jvp`` rules built from the engine's formulas.

JAX differentiates a formula operation by operation and keeps what each operation's
derivative needs: a Gaussian ReLU kept 21 residuals, a floor 16. Here the value is
the formula's value and its tangent is ``slope(x) * t``, so ``jax.grad`` keeps the
slope alone (one array), like ``jax.nn.softplus``; reductions keep the softmax weights,
as ``jax.nn.softmax`` does. The slope is itself ordinary JAX code, so higher
derivatives, ``vmap`` and ``jit`` work unchanged.

Imported only when a JAX array arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

import jax

from .._backend import Array, Backend
from .._engine.formula import Combination, Formula, Reduction, Transform


@partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _elementwise(formula: Formula, be: Backend, x: Array) -> Array:
    return formula.value(be, x)


@_elementwise.defjvp
def _elementwise_jvp(
    formula: Formula, be: Backend, primals: tuple[Array], tangents: tuple[Array]
) -> tuple[Array, Array]:
    (x,), (t,) = primals, tangents
    return _elementwise(formula, be, x), formula.slope(be, x) * t


def elementwise(be: Backend, formula: Formula, x: Array) -> Array:
    """``g(x)`` of an elementwise formula, differentiated through its closed-form slope."""
    return _elementwise(formula, be, x)


@partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def _reduction(formula: Reduction, be: Backend, axes: tuple[int, ...], x: Array) -> Array:
    return formula.value(be, x, axes)


@_reduction.defjvp
def _reduction_jvp(
    formula: Reduction,
    be: Backend,
    axes: tuple[int, ...],
    primals: tuple[Array],
    tangents: tuple[Array],
) -> tuple[Array, Any]:
    (x,), (t,) = primals, tangents
    xp = be.xp
    if formula.output_is_weights:
        # softmax: d p = p (t - sum(p t)) / w (sparsemax, entmax, log-softmax: their own)
        p = _reduction(formula, be, axes, x)
        return p, formula.output_tangent(be, p, t, axes)
    weights = formula.weights(be, x, axes)
    return _reduction(formula, be, axes, x), xp.sum(weights * t, axis=axes, keepdims=True)


@partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def _learnable_reduction(
    formula: Reduction, be: Backend, axes: tuple[int, ...], x: Array, width: Array
) -> Array:
    return replace(formula, width=width).value(be, x, axes)


@_learnable_reduction.defjvp
def _learnable_reduction_jvp(
    formula: Reduction,
    be: Backend,
    axes: tuple[int, ...],
    primals: tuple[Array, Array],
    tangents: tuple[Array, Array],
) -> tuple[Array, Any]:
    # an array width is an input: its tangent goes through the closed-form width slope,
    # finite where autodiff of x / w would give inf * 0 (entries at -inf, or exp underflow)
    (x, width), (t, t_width) = primals, tangents
    xp = be.xp
    f = replace(formula, width=width)
    out = _learnable_reduction(formula, be, axes, x, width)
    if formula.output_is_weights:
        return out, f.output_tangent(be, out, t, axes) + f.width_slope(be, out, axes) * t_width
    p = f.weights(be, x, axes)
    tangent = xp.sum(p * t, axis=axes, keepdims=True) + f.width_slope(be, p, axes, x) * t_width
    return out, tangent


def reduction(
    be: Backend, formula: Reduction, x: Array, axes: tuple[int, ...], hard: Array | None = None
) -> Array:
    """A reduction over ``axes`` (kept), differentiated through its weights; an array
    width is differentiated through the formula's width slope. ``hard``: its value
    forwarded, the reduction's tangent (under ``jax.jit`` XLA drops the unused smooth
    value)."""
    if isinstance(formula.width, float):
        out = _reduction(formula, be, axes, x)
    else:
        out = _learnable_reduction(replace(formula, width=None), be, axes, x, formula.width)
    return out if hard is None else straight_through(hard, out)


def recomputed(fn: Callable[..., Array], *inputs: Any) -> Array:
    """``fn(*inputs)`` differentiated by autodiff (an array width's generic formula).

    Left to XLA: under ``jax.jit`` it fuses the elementwise chain and keeps what it
    chooses for the backward pass; ``jax.checkpoint`` here would make eager ``jax.grad``
    6 times slower (clip, biweight) by tracing its body on every call. Users who want
    the intermediates recomputed wrap their loss in ``jax.checkpoint`` themselves.
    """
    return fn(*inputs)


def _merged(numbers: tuple[Any, ...], arrays: tuple[Array, ...]) -> tuple[Any, ...]:
    values = iter(arrays)
    return tuple(next(values) if v is None else v for v in numbers)


@partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def _combination(
    formula: Combination, be: Backend, numbers: tuple[Any, ...], *arrays: Array
) -> Array:
    return formula.value(be, _merged(numbers, arrays))


@_combination.defjvp
def _combination_jvp(
    formula: Combination,
    be: Backend,
    numbers: tuple[Any, ...],
    primals: tuple[Array, ...],
    tangents: tuple[Array, ...],
) -> tuple[Array, Array]:
    values = _merged(numbers, primals)
    out = _combination(formula, be, numbers, *primals)
    partials = formula.partials(be, values, tuple(v is None for v in numbers))
    tangent = sum(p * t for p, t in zip((p for p in partials if p is not None), tangents))
    return out, jax.numpy.broadcast_to(tangent, out.shape).astype(out.dtype)


def combination(be: Backend, formula: Combination, inputs: tuple[Any, ...]) -> Array:
    """A function of several inputs, differentiated through its closed-form partials;
    Python-float inputs stay constants."""
    numbers = tuple(v if isinstance(v, float) else None for v in inputs)
    return _combination(formula, be, numbers, *(v for v in inputs if not isinstance(v, float)))


@partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def _score_derivative(engine: Any, order: int, be: Backend, x: Array) -> Array:
    x = jax.numpy.asarray(x)  # JAX may hand the rule a weakly typed Python float
    return engine.derivatives(be, x, (order,))[0]


@_score_derivative.defjvp
def _score_derivative_jvp(
    engine: Any, order: int, be: Backend, primals: tuple[Array], tangents: tuple[Array]
) -> tuple[Array, Array]:
    (x,), (t,) = primals, tangents
    engine.check_order(order + 1)
    return _score_derivative(engine, order, be, x), _score_derivative(engine, order + 1, be, x) * t


def numerical(be: Backend, engine: Any, x: Array) -> Array:
    """The numerical engine's ``g(x)``; its tangent is ``g'(x) t`` by the score function."""
    return _score_derivative(engine, 0, be, x)


_SECOND_ORDER = (
    "second derivatives of a Monte Carlo function of vectors (event_ndim=1) or of the "
    "Fenchel-Young loss are not available: their score-function and pathwise estimators "
    "give the first derivative only"
)


@partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _perturbed(engine: Any, be: Backend, x: Array, p: Array) -> Array:
    return engine.perturbed(be, x, p, jacobian=False)[0]


@partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _perturbed_jacobian(engine: Any, be: Backend, x: Array, p: Array) -> tuple[Array, Array]:
    value, jacobian, _ = engine.perturbed(be, x, p, jacobian=True)
    return value, jacobian


@_perturbed_jacobian.defjvp
def _perturbed_jacobian_jvp(engine: Any, be: Backend, primals: Any, tangents: Any) -> Any:
    raise ValueError(_SECOND_ORDER)


@_perturbed.defjvp
def _perturbed_jvp(
    engine: Any, be: Backend, primals: tuple[Array, Array], tangents: tuple[Array, Array]
) -> tuple[Array, Array]:
    (x, p), (t, _) = primals, tangents
    value, jacobian = _perturbed_jacobian(engine, be, x, p)
    tangent = jax.numpy.sum(jacobian * t[..., None, :], axis=-1)
    return value, jax.numpy.reshape(tangent, value.shape)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _perturbed_recomputed(engine: Any, be: Backend, x: Array, p: Array) -> Array:
    return engine.perturbed(be, x, p, jacobian=False)[0]


def _perturbed_recomputed_fwd(
    engine: Any, be: Backend, x: Array, p: Array
) -> tuple[Array, tuple[Array, Array]]:
    engine.check_event_gradient()
    return engine.perturbed(be, x, p, jacobian=False)[0], (x, p)


def _perturbed_recomputed_bwd(
    engine: Any, be: Backend, residuals: tuple[Array, Array], cotangent: Array
) -> tuple[Array, Array]:
    x, p = residuals
    return _perturbed_vjp(engine, be, x, p, cotangent), jax.numpy.zeros_like(p)


_perturbed_recomputed.defvjp(_perturbed_recomputed_fwd, _perturbed_recomputed_bwd)


@partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _perturbed_vjp(engine: Any, be: Backend, x: Array, p: Array, cotangent: Array) -> Array:
    return engine.perturbed_vjp(be, x, p, cotangent)


@_perturbed_vjp.defjvp
def _perturbed_vjp_jvp(engine: Any, be: Backend, primals: Any, tangents: Any) -> Any:
    raise ValueError(_SECOND_ORDER)


def perturbed(be: Backend, engine: Any, x: Array, p: Array) -> Array:
    """A function of vectors smoothed by Monte Carlo. Where its Jacobian is small
    (:meth:`Engine.keeps_jacobian`) the tangent is the score-function Jacobian times
    ``t`` (``custom_jvp``, which JAX transposes for ``grad``); beyond, a ``custom_vjp``
    keeps ``x`` and the draws and evaluates ``f`` again for the vector-Jacobian product
    alone (reverse mode only: ``jax.jvp`` refuses it)."""
    # f's output shape, found without running it
    if engine.keeps_jacobian(x, jax.eval_shape(partial(engine.hard, be), x)):
        return _perturbed(engine, be, x, p)
    return _perturbed_recomputed(engine, be, x, p)


@partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _perturbed_max(
    engine: Any, be: Backend, theta: Array, y_true: Array, p: Array
) -> tuple[Array, Array]:
    return engine.perturbed_max(be, theta, p, y_true)


@_perturbed_max.defjvp
def _perturbed_max_jvp(engine: Any, be: Backend, primals: Any, tangents: Any) -> Any:
    raise ValueError(_SECOND_ORDER)


@partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _fenchel_young(engine: Any, be: Backend, theta: Array, y_true: Array, p: Array) -> Array:
    loss, _ = _perturbed_max(engine, be, theta, y_true, p)
    return loss


@_fenchel_young.defjvp
def _fenchel_young_jvp(
    engine: Any, be: Backend, primals: tuple[Array, ...], tangents: tuple[Array, ...]
) -> tuple[Array, Array]:
    (theta, y_true, p), (t_theta, t_true, _) = primals, tangents
    loss, solution = _perturbed_max(engine, be, theta, y_true, p)
    tangent = jax.numpy.sum((solution - y_true) * t_theta - theta * t_true, axis=-1)
    return loss, tangent


def fenchel_young(be: Backend, engine: Any, theta: Array, y_true: Array, p: Array) -> Array:
    """The Fenchel-Young loss; its tangent is ``<E[y*] - y_true, t_theta> - <theta,
    t_true>``."""
    return _fenchel_young(engine, be, theta, y_true, p)


@jax.custom_jvp
def straight_through(hard: Array, smooth: Array) -> Array:
    """``hard`` forward, the tangent of ``smooth`` backward (the smooth op's own, NaN
    where its input is NaN). The forward value is ``hard`` itself, with no arithmetic:
    XLA on the CPU flushes subnormals in ``hard - 0``, which would change the hard op's
    value."""
    return hard


@straight_through.defjvp
def _straight_through_jvp(
    primals: tuple[Array, Array], tangents: tuple[Array, Array]
) -> tuple[Array, Array]:
    hard, _ = primals
    return hard, tangents[1]


@partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _transform(formula: Transform, be: Backend, x: Array) -> Array:
    return formula.value(be, x)


@_transform.defjvp
def _transform_jvp(
    formula: Transform, be: Backend, primals: tuple[Array], tangents: tuple[Array]
) -> tuple[Array, Array]:
    (x,), (t,) = primals, tangents
    out, residuals = formula.forward(be, x)
    residuals = tuple(jax.lax.stop_gradient(r) for r in residuals)
    return out, formula.jvp(be, residuals, t)


def transform(be: Backend, formula: Transform, x: Array) -> Array:
    """A map of rows (a soft rank or sort), differentiated through its own linear
    Jacobian rule, which JAX transposes for reverse mode."""
    return _transform(formula, be, x)
