"""The op catalogue: one entry per public op.

An :class:`Op` holds everything the library knows about an op beyond its formula: the
hard function that straight-through forwards, the error bound, the shape (for the
piecewise ops), the parameters with the values that ``mollifier check``, the plots and
the tests use, the independent mpmath reference and the widths it is checked at. The
public op modules define their entry next to the function and :func:`register` it;
``check``, ``plot``, ``gallery``, the CLI, ``nn`` and the tests enumerate
:data:`CATALOGUE`. Adding an op is adding its function, its entry and its docs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._backend import Array, Backend, backend_of
from ._engine.bound import Bound
from ._engine.piecewise import Piecewise
from ._kernels import Kernel


@dataclass(eq=False)
class Op:
    """One public op.

    Attributes
    ----------
    name : str
        The public name.
    hard : callable or None
        ``hard(be, x, **params)``: the non-smooth op as the framework computes it
        (``xp.floor``, ``xp.sign``, ...), on ``x`` in the caller's dtype; what
        ``straight_through=True`` forwards. None for ops with several inputs, whose
        public function computes it.
    shape : callable or None
        ``shape(**params) -> Piecewise`` for the ops that are a piecewise polynomial.
    bound : callable or None
        ``bound(kernel, **params) -> Bound``; by default the shape's own bound.
    no_bound : str
        Why there is no sup-norm bound, for ops without one.
    params : dict
        The op's parameters (the ones :func:`mollifier.error_bound` accepts) with the
        values that ``mollifier check``, the plots and the tests use.
    reference : callable or None
        ``reference(kernel_name, width, x)``: the mpmath value at those parameters.
    widths : tuple of float
        The widths ``mollifier check`` runs at.
    array_width : bool
        Whether the op takes an array of widths (staircases choose their term counts
        from a Python number).
    module : str
        The class name of its :mod:`mollifier.nn` module ("" when there is none).
    smooth : callable
        The public function, set by :func:`register`.
    """

    name: str
    hard: Callable[..., Array] | None = None
    shape: Callable[..., Piecewise] | None = None
    bound: Callable[..., Bound] | None = None
    no_bound: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    reference: Callable[[str, float, float], Any] | None = None
    widths: tuple[float, ...] = ()
    array_width: bool = True
    module: str = ""
    smooth: Callable[..., Any] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"Op({self.name!r})"

    def bound_for(self, kernel: Kernel, params: dict[str, Any]) -> Bound:
        """The :class:`Bound` at these parameters, or ``ValueError`` saying why none."""
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            accepted = ", ".join(self.params) or "none"
            raise TypeError(f"{self.name} has no parameter {unknown[0]!r} (parameters: {accepted})")
        if self.bound is not None:
            return self.bound(kernel, **params)
        if self.shape is not None:
            shape = self.shape(**params)
            shape.check_kernel(kernel)
            return shape.bound(kernel)
        raise ValueError(f"{self.name} has no sup-norm error bound: {self.no_bound}")

    def admits(self, kernel: Kernel) -> bool:
        """Whether the op has a finite value with ``kernel`` (at its example parameters)."""
        if self.shape is None:
            return True
        try:
            self.shape(**self.params).check_kernel(kernel)
        except ValueError:
            return False
        return True

    def example(self, x: Array, **knobs: Any) -> Array:
        """The public op at its example parameters."""
        assert self.smooth is not None, f"{self.name} is not registered"
        return self.smooth(x, **self.params, **knobs)

    def hard_value(
        self, x: Array, params: dict[str, Any] | None = None, be: Backend | None = None
    ) -> Array:
        """The hard op at ``x`` (in ``x``'s dtype); the example parameters by default."""
        assert self.hard is not None, f"{self.name} computes its hard value itself"
        be = backend_of(x) if be is None else be
        return self.hard(be, x, **(self.params if params is None else params))


def oracle() -> Any:
    """The independent mpmath reference (:mod:`mollifier._reference`), imported when an
    entry's reference is first evaluated, so that ``import mollifier`` needs no mpmath."""
    from . import _reference

    return _reference


CATALOGUE: dict[str, Op] = {}
"""Every public op by name, in the order they are defined."""
ALIASES: dict[str, Op] = {}
"""Other public names of the same ops (``heaviside`` is ``step``)."""


def register(op: Op, *aliases: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: make the function ``op.smooth`` and enter ``op`` in the catalogue."""

    def enter(function: Callable[..., Any]) -> Callable[..., Any]:
        op.smooth = function
        CATALOGUE[op.name] = op
        for alias in aliases:
            ALIASES[alias] = op
        return function

    return enter


def referenced() -> dict[str, Op]:
    """The entries with an mpmath reference (the single-input elementwise ops): what
    ``mollifier check`` runs and :mod:`mollifier.plot` draws."""
    return {name: op for name, op in CATALOGUE.items() if op.reference is not None}


def find(op: Any) -> Op:
    """The entry of an op given by name or as the public function itself."""
    if isinstance(op, str):
        entry = CATALOGUE.get(op) or ALIASES.get(op)
        if entry is not None:
            return entry
    elif callable(op):
        for entry in (*CATALOGUE.values(), *ALIASES.values()):
            if entry.smooth is op:
                return entry
    names = sorted(n for n, e in CATALOGUE.items() if e.bound or e.shape) + sorted(ALIASES)
    raise ValueError(f"op must be one of {sorted(names)} or a Piecewise; got {op!r}")
