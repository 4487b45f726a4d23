"""``smooth(f, ...)``: the smoothed version of a function, as a new function."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from . import _dispatch
from ._backend import Array, as_float_array
from ._catalogue import Op
from ._engine.numerical import (
    METHODS,
    NODES_PER_PANEL,
    QMC_REPLICATES,
    SAMPLERS,
    Engine,
    call_elementwise,
    seed_kind,
)
from ._engine.piecewise import Piecewise
from ._kernels import Kernel, get_kernel
from ._params import count, flag, one_of, positive_real

KernelLike = str | Kernel

DEFAULT_NODES = 16 * NODES_PER_PANEL
DEFAULT_MAX_NODES = 4096 * NODES_PER_PANEL
DEFAULT_TOL = 1e-9
DEFAULT_TRACED_PANELS = 64
DEFAULT_BISECTIONS = 30
DEFAULT_SAMPLES = 4096
GRADIENTS = ("score", "autodiff")


def _check_draws(draws: int, antithetic: Any, sampler: str, seed: Any) -> None:
    """The Monte Carlo sample count against the sampling scheme (``smooth`` and
    ``fenchel_young_loss`` alike): even for antithetic pairs; ``sampler="sobol"`` needs a
    NumPy seed and at least its replicates' worth of draws."""
    if antithetic and draws % 2:
        raise ValueError(f"samples must be even when antithetic=True; got {draws}")
    if seed_kind(seed) != "numpy" and sampler == "sobol":  # seed_kind checks every seed
        raise TypeError(
            "sampler='sobol' draws its scrambles with NumPy: seed must be an int, None or a "
            f"numpy.random.Generator; got {type(seed).__name__}"
        )
    minimum = QMC_REPLICATES * (2 if antithetic else 1)
    if sampler == "sobol" and draws < minimum:
        raise ValueError(f"samples must be >= {minimum} with sampler='sobol'; got {draws}")


def smooth(
    f: Piecewise | Callable[[Array], Array],
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
    method: str = "auto",
    nodes: int | None = None,
    max_nodes: int | None = None,
    bisections: int | None = None,
    samples: int | None = None,
    seed: Any = None,
    antithetic: bool = True,
    sampler: str = "random",
    gradient: str = "score",
    event_ndim: int = 0,
) -> Callable[..., Any]:
    r"""Return ``g = f * k_w``, the convolution of ``f`` with the kernel at ``width``.

    .. math:: g(x) = \int f(x - w u)\, k(u)\, du = E[f(x - wU)]

    Parameters
    ----------
    f : Piecewise or callable
        A :class:`Piecewise` polynomial (degree <= 2 per piece): ``g`` is exact in
        closed form, a finite sum of the kernel's truncated moments at ``(x - c_i)/w``.
        Or any elementwise function of arrays (``np.floor``, ``lambda y: ...``, a
        lookup table, a simulator step), evaluated once per node on the whole array;
        it must return an array of its input's framework and shape.
    width : float
        The kernel scale (required for a callable ``f``).
    tol : float
        For a :class:`Piecewise`: the sup error that picks the width (``tol / (L E|U|)``
        for continuous ``f`` with Lipschitz constant ``L``). For a callable and
        quadrature: the error sought, default ``1e-9``, absolute where ``f`` is of order
        one and relative to ``E|f(x - wU)|`` (the scale of ``f`` near ``x``) beyond, for
        the value and for each derivative taken (relative to ``w^-n E|f k^(n)/k|``).
    kernel : str or Kernel, default "logistic"
    straight_through : bool, default False
        ``g`` forwards ``f`` and backpropagates the smooth gradient.
    method : {"auto", "exact", "quadrature", "monte_carlo"}, default "auto"
        ``"auto"`` is ``"exact"`` for a :class:`Piecewise` and ``"quadrature"`` for a
        callable.
    nodes : int, default 480
        Quadrature nodes of the first level, rounded up to a multiple of 30: the support
        (``|u| <= 9`` for the Gaussian, ``40`` for logistic and Laplace, the whole line
        through ``u = tan(theta)`` for Cauchy and sqrt, ``1`` for the compact kernels)
        is cut into ``nodes / 30`` panels, each split at its located jump and integrated
        by a 15-point Gauss-Kronrod rule on either side.
    max_nodes : int, default 122880
        The quadrature budget: the panel count doubles until every element meets
        ``tol`` or the next level would exceed ``max_nodes``, which raises
        :class:`AccuracyWarning`. While traced by JAX (``jax.jit``, ``vmap``,
        ``grad``), where every level would be compiled and, under ``vmap``, computed,
        one level of 64 panels (1,920 nodes) is used unless ``max_nodes`` is given;
        there no warning can be raised: check ``return_error``.
    bisections : int, default 30
        Halvings that locate, in each panel, the jump or kink of ``f``; each costs two
        evaluations of ``f`` per panel. ``0`` skips the search (smooth ``f``).
    samples : int, default 4096
        Monte Carlo samples (even when ``antithetic``).
    seed : int, numpy.random.Generator, torch.Generator, JAX key or None
        Monte Carlo randomness. An int gives the same samples on every call; a
        generator is advanced by each call; a JAX key gives the same samples for as
        long as it is the same key.
    antithetic : bool, default True
        Monte Carlo in pairs ``(U, -U)``: exact for the odd part of ``f``.
    sampler : {"random", "sobol"}, default "random"
        Monte Carlo draws: independent uniforms, or randomized quasi-Monte Carlo: 16
        independently scrambled Sobol sequences (``scipy.stats.qmc``) of ``2^k`` points
        each, the largest with ``16 * 2^k`` draws within ``samples`` (halved when
        antithetic), mapped through the kernel's quantile. The standard error is the
        spread of the 16 replicate means, honest for either; QMC's falls like
        ``samples^-1`` for smooth ``f`` (``samples^-1/2`` for plain Monte Carlo) and
        about like ``samples^-3/4`` across a jump. Needs a NumPy seed (an int, None or a
        ``numpy.random.Generator``).
    event_ndim : {0, 1}, default 0
        ``1``: ``f`` is a function of vectors, ``R^n -> R^m`` (or any output shape),
        applied over the last axis of ``x`` with the leading axes as a batch (``f`` must
        accept extra leading axes: it is called on ``(draws, *batch, n)`` at once), and
        ``g(x) = E[f(x - wU)]`` with ``U`` iid from the kernel in each coordinate: the
        perturbed optimizer of Berthet et al. (2020) (``f`` an argmax one-hot, a sort,
        a ranking, a shortest path). Monte Carlo only (``method`` ``"auto"`` or
        ``"monte_carlo"``); the score gradient is Stein's identity per coordinate,
        ``d g_i / d x_j = w^-1 E[f_i(x - wU) k'(U_j)/k(U_j)]``, with a baseline that
        keeps it unbiased (first derivatives only). ``g(x, seed=key)`` draws with another
        seed for that call (a JAX key may then be traced under ``jax.jit``).
    gradient : {"score", "autodiff"}, default "score"
        How numerical ``g`` is differentiated. ``"score"``: the Stein form
        ``g^(n)(x) = w^-n E[f(x - wU) k^(n)(U)/k(U)]`` through a custom gradient
        (``torch.autograd.Function``, ``jax.custom_jvp``), exact for jumps, up to the
        second derivative. ``"autodiff"``: the framework differentiates ``f`` at the
        nodes (right only for continuous ``f``; gradients also reach parameters that
        ``f`` closes over).

    Returns
    -------
    callable
        ``g(x)`` for NumPy, PyTorch and JAX arrays, keeping ``x``'s dtype. With
        quadrature, ``g(x, return_error=True)`` returns ``(value, error_estimate)``
        (on PyTorch and JAX the value is computed a second time, with its custom
        gradient); with ``method="monte_carlo"``, ``g(x, return_stderr=True)`` returns
        ``(estimate, standard_error)``.

    Warns
    -----
    AccuracyWarning
        Quadrature whose error estimate stays above ``tol`` at some element once
        ``max_nodes`` is spent (jumps denser than the budget resolves, or an ``f``
        with infinitely many jumps under a heavy-tailed kernel). The value is the best
        found; turn the warning into an error with ``warnings.simplefilter``.

    Raises
    ------
    ValueError
        For the Cauchy kernel and a :class:`Piecewise` that grows like ``|x|``
        (the convolution diverges), and, when ``g`` is called, for a callable whose
        convolution diverges even as a principal value under a heavy-tailed kernel
        (``abs`` or ``relu`` with Cauchy, ``x**2`` with sqrt; measured from ``f``'s
        growth up to ``|u| = 1e9``, not while traced); bad widths, a ``tol`` that no width meets, an
        unknown ``method`` or ``gradient``, ``nodes < 1``, ``bisections < 0``, options
        that the method does not use, and, when ``g`` is called, an ``f`` that is not
        elementwise. Differentiating past the kernel's highest derivative order
        raises too (:attr:`Kernel.max_derivative_order`).
    TypeError
        If ``f`` is not callable, or returns complex numbers or another framework's
        arrays; a seed of the wrong kind.

    Notes
    -----
    *Exact* (Piecewise): sup error ``sum |jumps| / 2 + L w E|U|``; ``g -> f`` at every
    continuity point as ``w -> 0``, and ``g' = f' * k_w`` plus ``h k_w(x - c)`` for each
    jump ``h``.

    *Quadrature*: each panel is split where ``f`` is least smooth (bisection on second
    differences) and each side integrated by Gauss-Kronrod (7, 15). The error
    estimate of a level adds, over every side of every panel, ``|K15 - G7|``, the last
    bisection bracket times the jump across it, the kernel mass beyond the integrated
    range, and the distance to the previous level's value (which catches a narrow
    feature every node of one level missed); an element takes the first level whose
    estimate meets ``tol``. Measured (docs/accuracy.md): 1e-8 or better in value and
    gradient for bounded ``f`` with jumps from 1e-3 to 100 widths apart (Gaussian;
    10 for logistic and Laplace) at the default budget, and the estimate at or above
    the actual error in at least 99% of the test cases; denser jumps warn. For the
    heavy-tailed kernels (Cauchy, sqrt) ``u`` is paired with ``-u``, so an ``f`` of
    linear growth gets its principal value (``f(y) = y`` gives ``x`` with Cauchy);
    an ``f`` with infinitely many jumps (a staircase) cannot be resolved out in
    the tails and warns: use the closed forms (``mol.floor``). NaN from ``f`` at any
    node makes ``g`` NaN there.

    *Monte Carlo*: unbiased, standard error ``O(samples^-1/2)``; the same samples serve
    every element of ``x``. The score estimator of ``g^(n)`` has finite variance only
    when ``E[(k^(n)/k)^2] < inf``: every kernel for ``n = 1`` except Epanechnikov;
    ``n = 2`` for Gaussian, logistic, Laplace and Cauchy
    (:attr:`Kernel.max_score_order`). Variance reduction: antithetic pairs
    ``(K^-1(p), K^-1(1 - p))`` (``(U, -U)`` for the symmetric kernels: exact for the odd
    part of ``f``), and for the derivatives a control variate, the score less its known
    mean times ``f``'s mean over the other independent draws (pairs, QMC replicates):
    unbiased, and the estimate does not depend on ``f``'s level (``f + 1000`` has the
    same estimated derivatives). The standard error is the value's.

    *Functions of vectors* (``event_ndim=1``): as Monte Carlo, per coordinate; the
    Jacobian ``(..., m, n)`` is computed with the value from the same evaluations of
    ``f`` and kept alone for the backward pass (beyond 2^22 elements ``x`` and the draws
    are kept and ``f`` is evaluated again in backward; JAX then has reverse mode only).
    NaN in a row of ``x`` gives NaN for that row.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> f = mol.Piecewise(breakpoints=[-1, 0, 2], pieces=[[0], [1, 1], [1, -0.5], [0]])
    >>> g = mol.smooth(f, kernel="laplace", width=0.3)
    >>> g(np.array([-3.0, 0.0, 1.0, 5.0]))  # mpmath: 1.806844e-4, 0.7804465, 0.4948398, 3.392304e-6
    array([1.80684419e-04, 7.80446547e-01, 4.94839796e-01, 3.39230397e-06])

    Any callable, here a staircase whose smoothed version has a non-zero gradient:

    >>> g = mol.smooth(np.floor, kernel="gaussian", width=0.3)
    >>> x = np.array([0.25, 0.5, 2.75])
    >>> bool(np.max(np.abs(g(x) - mol.floor(x, kernel="gaussian", width=0.3))) < 1e-9)
    True

    With its error estimate; a budget too small for the jumps warns:

    >>> g = mol.smooth(np.floor, kernel="logistic", width=2.0)
    >>> value, error = g(x, return_error=True)
    >>> exact = mol.floor(x, kernel="logistic", width=2.0)
    >>> bool(np.all(np.abs(value - exact) <= error)), bool(np.all(error < 1e-8))
    (True, True)
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = mol.smooth(np.floor, width=2.0, max_nodes=960)(x)
    >>> caught[0].category.__name__
    'AccuracyWarning'
    """
    straight_through = flag(straight_through, "straight_through")
    antithetic = flag(antithetic, "antithetic")
    method = one_of(method, METHODS + ("auto", "exact"), "method")
    gradient = one_of(gradient, GRADIENTS, "gradient")
    sampler = one_of(sampler, SAMPLERS, "sampler")
    # an int only: 1.0 == 1 and True == 1 would pass a test of membership
    if (
        isinstance(event_ndim, bool)
        or not isinstance(event_ndim, numbers.Integral)
        or (event_ndim not in (0, 1))
    ):
        raise ValueError(f"event_ndim must be 0 (elementwise f) or 1 (f of vectors); got "
                         f"{event_ndim!r}")  # fmt: skip
    event_ndim = int(event_ndim)
    # the asymmetric kernels (Gumbel) serve the numerical methods; the closed forms of a
    # Piecewise refuse them
    k = get_kernel(kernel, numerical=True)
    if event_ndim == 1:
        if method not in ("auto", "monte_carlo"):
            raise ValueError(
                "event_ndim=1 (a function of vectors) is smoothed by Monte Carlo only: "
                f"method must be 'auto' or 'monte_carlo'; got {method!r}"
            )
        method = "monte_carlo"
    if method == "auto":
        method = "exact" if isinstance(f, Piecewise) else "quadrature"
    numerical = {
        "nodes": nodes, "max_nodes": max_nodes, "bisections": bisections, "samples": samples,
        "seed": seed,
    }  # fmt: skip
    if method == "exact":
        unused = [name for name, value in numerical.items() if value is not None]
        if not isinstance(f, Piecewise):
            raise ValueError(f"method='exact' needs a mollifier.Piecewise f; got {_name(f)}")
        if unused or not antithetic or gradient != "score" or sampler != "random":
            raise ValueError(
                "nodes, max_nodes, bisections, samples, seed, antithetic and gradient apply to "
                f"method='quadrature' or 'monte_carlo', not 'exact'; got {unused or 'some'}"
            )
        return _exact(f, width, tol, k, straight_through)
    if not callable(f):
        raise TypeError(f"f must be a mollifier.Piecewise or a callable; got {_name(f)}")
    if width is None:
        raise ValueError("width is required for a callable f")
    w = positive_real(width, "width")
    quadrature = method == "quadrature"
    for name in ("nodes", "max_nodes", "bisections") if not quadrature else ("samples", "seed"):
        if numerical[name] is not None:
            raise ValueError(f"{name} applies to the other method, not method={method!r}")
    if not quadrature and tol is not None:
        raise ValueError("tol applies to method='quadrature'; Monte Carlo has samples")
    accuracy = DEFAULT_TOL if tol is None else positive_real(tol, "tol")
    if quadrature and sampler != "random":
        raise ValueError("sampler applies to method='monte_carlo'")
    if quadrature:
        panels = -(-count(nodes, DEFAULT_NODES, "nodes", 1) // NODES_PER_PANEL)
        budget = count(max_nodes, max(DEFAULT_MAX_NODES, panels * NODES_PER_PANEL),
                       "max_nodes", 1)  # fmt: skip
        max_panels = -(-budget // NODES_PER_PANEL)
        if max_panels < panels:
            raise ValueError(f"max_nodes must be >= nodes; got {budget} < {nodes}")
        halvings = count(bisections, DEFAULT_BISECTIONS, "bisections", 0)
        draws = 0
    else:
        panels = halvings = max_panels = 0
        # a function of vectors: at least two independent draws (or pairs) for the baseline
        draws = count(
            samples, DEFAULT_SAMPLES, "samples", (2 if antithetic else 1) * (1 + event_ndim)
        )
        _check_draws(draws, antithetic, sampler, seed)
    engine = Engine(
        f, k, w, method, panels, halvings, draws, bool(antithetic), seed, accuracy, max_panels,
        DEFAULT_TRACED_PANELS if max_nodes is None else None, sampler, event_ndim,
    )  # fmt: skip
    return SmoothedFunction(engine, gradient=gradient, straight_through=straight_through)


def _exact(
    f: Piecewise, width: Any, tol: Any, k: Kernel, straight_through: bool
) -> Callable[[Array], Array]:
    f.check_kernel(k)
    # the user's function as an op of its own: its hard value is itself, its bound its own
    op = Op(repr(f), hard=lambda be, x: f._evaluate(be, x), shape=lambda: f)
    w = _dispatch.resolve_width(op, width, tol, k)

    def smoothed(x: Any) -> Array:
        return _dispatch.elementwise(
            op, None, x, width=w, tol=None, kernel=k, straight_through=straight_through,
        )  # fmt: skip

    shown = f"{w:g}" if isinstance(w, float) else "given as an array"
    smoothed.__doc__ = f"{f!r} convolved with the {k.name} kernel of width {shown}."
    return smoothed


class SmoothedFunction:
    """``g = f * k_w`` for a callable ``f``, evaluated numerically (see :func:`smooth`).

    Call it on an array; with ``method="monte_carlo"``, ``g(x, return_stderr=True)``
    also returns the estimate's standard error.
    """

    def __init__(self, engine: Engine, *, gradient: str, straight_through: bool) -> None:
        self.engine = engine
        self.gradient = gradient
        self.straight_through = straight_through

    def __repr__(self) -> str:
        e = self.engine
        knobs = (
            f"nodes={e.panels * NODES_PER_PANEL}, max_nodes={e.max_panels * NODES_PER_PANEL}, "
            f"bisections={e.bisections}, tol={e.tol:g}"
            if e.method == "quadrature"
            else f"samples={e.samples}, antithetic={e.antithetic}"
        )
        event = f", event_ndim={e.event_ndim}" if e.event_ndim else ""
        return (
            f"smooth({_name(e.f)}, kernel={e.kernel.name!r}, width={e.width:g}, "
            f"method={e.method!r}, {knobs}, gradient={self.gradient!r}{event})"
        )

    def __call__(
        self,
        x: Array,
        /,
        *,
        return_stderr: bool = False,
        return_error: bool = False,
        seed: Any = None,
    ) -> Any:
        be, x_c, dtype = as_float_array(x, "x")
        if self.engine.event_ndim:
            if flag(return_error, "return_error"):
                raise ValueError("return_error applies to method='quadrature'; Monte Carlo "
                                 "has return_stderr")  # fmt: skip
            return self._vector(be, x_c, dtype, flag(return_stderr, "return_stderr"), seed)
        if seed is not None:
            raise ValueError("seed= at call time applies to event_ndim=1; pass it to smooth")
        if flag(return_error, "return_error"):
            if self.engine.method != "quadrature":
                raise ValueError(
                    "return_error applies to method='quadrature'; Monte Carlo has return_stderr"
                )
            with be.quiet():
                values, errors = self.engine.derivatives_and_errors(be, be.stop_gradient(x_c), (0,))
            assert errors is not None
            error = _dispatch.finish(be, errors[0], dtype)
            if be.name == "numpy" and not self.straight_through:
                return _dispatch.finish(be, values[0], dtype), error
            # torch and JAX: the value again, through its score-function derivative
            return self(x), error
        if flag(return_stderr, "return_stderr"):
            if self.engine.method != "monte_carlo":
                raise ValueError("return_stderr applies to method='monte_carlo'")
            with be.quiet():
                value, stderr = self.engine.value_and_stderr(be, x_c)
            return _dispatch.finish(be, value, dtype), _dispatch.finish(
                be, be.stop_gradient(stderr), dtype
            )
        out = _dispatch.evaluate_numerical(be, self.engine, x_c, self.gradient == "score")
        hard = None
        if self.straight_through:
            with be.quiet():
                hard = call_elementwise(be, self.engine.f, _dispatch.caller_dtype(be, x_c, dtype))
        return _dispatch.finish(be, out, dtype, hard)

    def _vector(self, be: Any, x: Array, dtype: Any, return_stderr: bool, seed: Any) -> Any:
        """``g(x)`` of a function of vectors (``event_ndim=1``), see :func:`smooth`."""
        if x.ndim < 1 or x.shape[-1] < 1:
            raise ValueError(
                "x must have a last axis of at least one entry (the vector f acts on) for "
                f"event_ndim=1; got shape {tuple(x.shape)}"
            )
        engine = self.engine
        if seed is not None:
            if seed_kind(seed) != "numpy" and engine.sampler == "sobol":
                raise TypeError("sampler='sobol' needs a NumPy seed (an int, None or a "
                                f"numpy.random.Generator); got {type(seed).__name__}")  # fmt: skip
            engine = replace(engine, seed=seed)
        p = engine.event_draws(be, x)
        # the draws are made: the seed (maybe a traced JAX key) stays out of the adapters
        engine = replace(engine, seed=None)
        if return_stderr and be.name == "numpy" and not self.straight_through:
            with be.quiet():
                value, _, stderr = engine.perturbed(be, x, p, jacobian=False, want_stderr=True)
            assert stderr is not None
            return _dispatch.finish(be, value, dtype), _dispatch.finish(be, stderr, dtype)
        out = _dispatch.evaluate_perturbed(be, engine, x, p, self.gradient == "score")
        hard = None
        if self.straight_through:
            with be.quiet():
                hard = engine.hard(be, _dispatch.caller_dtype(be, x, dtype))
            if tuple(hard.shape) != tuple(out.shape):  # pragma: no cover - f is not batched
                raise ValueError("f(x) and its smoothed value differ in shape")
        value = _dispatch.finish(be, out, dtype, hard)
        if not return_stderr:
            return value
        with be.quiet():  # the same draws: the standard error of this very estimate
            _, _, stderr = engine.perturbed(
                be, be.stop_gradient(x), p, jacobian=False, want_stderr=True
            )
        assert stderr is not None
        return value, _dispatch.finish(be, stderr, dtype)


def _name(f: Any) -> str:
    return getattr(f, "__name__", None) or type(f).__name__


def fenchel_young_loss(
    theta: Array,
    y_true: Array,
    /,
    *,
    maximizer: Callable[[Array], Array],
    width: float,
    kernel: KernelLike = "gaussian",
    samples: int | None = None,
    seed: Any = None,
    antithetic: bool = True,
    sampler: str = "random",
) -> Array:
    r"""The Fenchel-Young loss of a perturbed maximizer (Berthet et al. 2020).

    For a maximizer ``y*(theta) = argmax_{y in C} <y, theta>`` over a finite set ``C``
    (one-hot vectors: argmax; permutation vectors: ranking; paths: shortest path with
    ``theta`` the negated costs), the perturbed maximum and maximizer are

    .. math:: F(\theta) = E\big[\max_{y \in C} \langle y, \theta - wU\rangle\big],
        \qquad \bar y(\theta) = E[y^*(\theta - wU)] = \nabla F(\theta),

    with ``U`` iid from the kernel in each coordinate, and the loss is

    .. math:: L(\theta; y) = F(\theta) - \langle y, \theta\rangle,
        \qquad \nabla_\theta L = \bar y(\theta) - y,

    (the Fenchel-Young loss ``F(theta) + Omega(y) - <y, theta>`` up to ``Omega(y)``,
    which does not depend on ``theta``): convex in ``theta``, minimal where the perturbed
    maximizer equals the target.

    Parameters
    ----------
    theta : array, shape (..., n)
        Scores (the objective's coefficients); the leading axes are a batch.
    y_true : array, shape (..., n)
        Target solutions, in ``C`` or its convex hull.
    maximizer : callable
        ``y*``: arrays ``(..., n) -> (..., n)`` of ``theta``'s framework, batched over
        the leading axes (it is called on ``(draws, ..., n)`` at once).
    width : float
        The noise scale ``w``.
    kernel : str or Kernel, default "gaussian"
        The noise law of ``U`` (``"gumbel"``: ``theta + wG``, so the perturbed argmax
        is ``softmax(theta / w)``, see :func:`smooth`).
    samples, seed, antithetic, sampler
        Monte Carlo as in :func:`smooth` (default 4096 samples in antithetic pairs; an
        int seed gives the same draws on every call; a JAX key may be traced).

    Returns
    -------
    array, shape (...)
        The loss per row, Monte Carlo estimated. Its gradient in ``theta`` is
        ``ybar - y_true`` with ``ybar`` the mean of ``y*`` over the same draws (the
        pathwise derivative of the estimated ``F``, exact for each draw); in ``y_true``
        it is ``-theta``. Torch and JAX give first derivatives only.

    Raises
    ------
    ValueError
        Shapes of ``theta`` and ``y_true`` that differ, a ``theta`` without a last
        axis, a maximizer that does not return ``theta``'s shape, a bad width or
        sample count.
    TypeError
        Inputs of different frameworks; a seed of the wrong kind.

    Notes
    -----
    The estimate of ``F`` is unbiased with standard error ``O(samples^-1/2)``; its
    gradient is the unbiased estimate of ``ybar`` from the same draws (no score
    function is needed: ``max_y <y, theta>`` is convex and piecewise linear, with
    derivative ``y*(theta)`` for almost every draw). As ``w -> 0``, ``ybar -> y*(theta)``
    and the loss tends to the structured perceptron loss ``max_y <y, theta> - <y_true,
    theta>``. This is optax's ``make_fenchel_young_loss`` with a perturbed maximizer
    (optax.perturbations) in the library's ``theta - wU`` convention.

    References
    ----------
    Q. Berthet, M. Blondel, O. Teboul, M. Cuturi, J.-P. Vert, F. Bach, "Learning with
    Differentiable Perturbed Optimizers", NeurIPS 2020.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> onehot = lambda y: np.eye(3)[np.argmax(y, axis=-1)]
    >>> theta = np.array([1.0, 0.2, -0.5])
    >>> loss = mol.fenchel_young_loss(theta, np.array([1.0, 0.0, 0.0]), maximizer=onehot,
    ...                               width=1.0, kernel="gumbel", seed=0)
    >>> bool(abs(loss - np.log(np.sum(np.exp(theta))) - 0.5772156649 + theta[0]) < 0.05)
    True
    """
    k = get_kernel(kernel, numerical=True)
    w = positive_real(width, "width")
    if not callable(maximizer):
        raise TypeError(f"maximizer must be callable; got {_name(maximizer)}")
    sampler = one_of(sampler, SAMPLERS, "sampler")
    antithetic = flag(antithetic, "antithetic")
    draws = count(samples, DEFAULT_SAMPLES, "samples", 4 if antithetic else 2)
    _check_draws(draws, antithetic, sampler, seed)
    be, (theta_c, true_c), dtype = _dispatch.operands((theta, y_true), ("theta", "y_true"))
    if isinstance(theta_c, float) or isinstance(true_c, float) or theta_c.ndim < 1:
        raise ValueError("theta and y_true must be arrays with a last axis (the vector)")
    if tuple(theta_c.shape) != tuple(true_c.shape):
        raise ValueError(
            f"y_true must have theta's shape {tuple(theta_c.shape)}; got {tuple(true_c.shape)}"
        )
    engine = Engine(maximizer, k, w, "monte_carlo", 0, 0, draws, antithetic, seed,
                    sampler=sampler, event_ndim=1)  # fmt: skip
    p = engine.event_draws(be, theta_c)
    engine = replace(engine, seed=None)  # drawn: a traced JAX key stays out of the adapters
    return _dispatch.finish(
        be, _dispatch.evaluate_fenchel_young(be, engine, theta_c, true_c, p), dtype
    )
