"""The array-API engine: every formula of the library, written once for every framework.

Nothing here knows an op's public name or imports a framework: the modules take a
:class:`~mollifier._backend.Backend` and arrays of its framework, and build
:class:`~mollifier._engine.formula.Formula` objects (a value and its slope side by side)
that the framework adapters in :mod:`mollifier._adapters` are handed.

* ``formula``: the Formula object (and ``Reduction``, ``Combination``);
* ``piecewise``: piecewise polynomials, their exact convolution, slope and error bound;
* ``staircase``: smooth floor/ceil/round/trunc/frac values and slopes;
* ``gate``: the product forms ``x K(x/w)`` (GELU, swish) and the kernel bumps;
* ``lse``: shifted logsumexp, softmax and p-norms over axes;
* ``select``: ``maximum``/``minimum`` and ``where`` of several inputs, overflow-free;
* ``sparse``: sparsemax and entmax-1.5 (exact, sort-based) and their regularized max;
* ``numerical``: the quadrature / Monte Carlo engine for any callable;
* ``isotonic``: pool-adjacent-violators batched over rows, and its block averages;
* ``sorting``: soft ranks, sorts and top-k masks (``Transform`` objects: a map of rows
  with its own Jacobian rules), sorting networks.
"""
