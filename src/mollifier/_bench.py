"""Benchmark mollifier against native torch ops and peers, side by side in one process.

Run ``mollifier bench`` or ``python benchmarks/bench.py`` (``--size 1000000 --repeat 3``
for a quick look; ``--compile`` adds torch.compile rows, ``--jax`` a jax.jit table;
``--piecewise`` prints instead every piecewise op x kernel against its native counterpart,
with the peak memory of forward+backward, at each ``--size``; ``--kernel`` keeps some).
Needs torch (extra ``torch``).
Prints markdown tables: median time of forward and forward+backward, the ratio to the
native op measured in the same process, and the bytes autograd saves for backward
(the memory a training step holds per op); then mollifier against its peers, op for op.
Su (2021)'s windowed floor ("seed floor": sum over n = -M..N of sigmoid(t (x - n)), M=5, N=10, t=10)
is written out plainly below; SoftTorch 0.1.1 is used when it is installed.
"""

from __future__ import annotations

import argparse
import functools
import math
import platform
import statistics
import time
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import mollifier as mol
from mollifier._kernels import kernels


def seed_floor(x: torch.Tensor, t: float = 10.0, m: int = 5, n: int = 10) -> torch.Tensor:
    """Su (2021)'s windowed smooth floor: O(M + N) sigmoids, valid only for -M << x << N."""
    total = torch.zeros_like(x)
    for k in range(-m, 1):
        total = total + (torch.sigmoid(t * (x - k)) - 1.0)
    for k in range(1, n + 1):
        total = total + torch.sigmoid(t * (x - k))
    return total


def saved_bytes(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> int:
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x.detach().requires_grad_(True))
    return total


def median_seconds(run: Callable[[], object], repeat: int) -> float:
    run()  # warm up (and compile)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


Op = Callable[[torch.Tensor], torch.Tensor]


def measure(fn: Op, x: torch.Tensor, repeat: int) -> tuple[float, float]:
    forward = median_seconds(lambda: fn(x), repeat)
    xg = x.detach().requires_grad_(True)

    def both() -> None:
        fn(xg).sum().backward()
        xg.grad = None

    return forward, median_seconds(both, repeat)


def cases(x: torch.Tensor, matrix: torch.Tensor) -> list[tuple[str, str, Op, Op, torch.Tensor]]:
    w = 0.1

    def softplus(v: torch.Tensor) -> torch.Tensor:  # w * softplus(x / w), the native twin
        return F.softplus(v, beta=1 / w)

    def lse(v: torch.Tensor) -> torch.Tensor:
        return w * torch.logsumexp(v / w, dim=-1)

    def soft(v: torch.Tensor) -> torch.Tensor:
        return torch.softmax(v / w, dim=-1)

    rows: list[tuple[str, str, Op, Op, torch.Tensor]] = [
        ("relu (logistic)", "F.softplus", lambda v: mol.relu(v, width=w), softplus, x),
        ("relu (gaussian)", "F.gelu", lambda v: mol.relu(v, width=w, kernel="gaussian"), F.gelu, x),
        ("step (logistic)", "F.softplus", lambda v: mol.step(v, width=w), softplus, x),
        ("abs (logistic)", "F.softplus", lambda v: mol.abs(v, width=w), softplus, x),
        ("sign (logistic)", "F.softplus", lambda v: mol.sign(v, width=w), softplus, x),
        ("clip (logistic)", "F.softplus", lambda v: mol.clip(v, -1.0, 1.0, width=w), softplus, x),
        ("gelu", "F.gelu", mol.gelu, F.gelu, x),
        ("swish", "F.silu", mol.swish, F.silu, x),
        ("floor (logistic)", "torch.floor", lambda v: mol.floor(v, width=w), torch.floor, x),
        ("round (logistic)", "torch.round", lambda v: mol.round(v, width=w), torch.round, x),
        ("round (gaussian)", "torch.round",
         lambda v: mol.round(v, width=w, kernel="gaussian"), torch.round, x),
        ("seed floor (M=5, N=10)", "torch.round", seed_floor, torch.round, x),
        ("logsumexp", "torch.logsumexp", lambda v: mol.logsumexp(v, width=w), lse, matrix),
        ("softmax", "torch.softmax", lambda v: mol.softmax(v, width=w), soft, matrix),
        ("softmax (sparsemax)", "torch.softmax",
         lambda v: mol.softmax(v, width=w, method="sparsemax"), soft, matrix),
        ("softmax (entmax15)", "torch.softmax",
         lambda v: mol.softmax(v, width=w, method="entmax15"), soft, matrix),
        ("log_softmax", "torch.log_softmax", lambda v: mol.log_softmax(v, width=w),
         lambda v: torch.log_softmax(v / w, dim=-1), matrix),
        ("clone (bandwidth floor)", "x.clone", lambda v: v.clone(), lambda v: v.clone(), x),
    ]  # fmt: skip
    return rows


def peers(x: torch.Tensor) -> list[tuple[str, Op, str, Op]]:
    """``(op, mollifier, peer name, peer)`` at the same softness (width 0.1)."""
    w = 0.1
    rows: list[tuple[str, Op, str, Op]] = [
        ("floor", lambda v: mol.floor(v, width=w), "seed floor (M=5, N=10, t=1/w)", seed_floor),
    ]
    try:
        import softtorch
    except Exception:  # any import failure just drops SoftTorch's rows
        return rows
    for name, ours, theirs in [
        ("round", lambda v: mol.round(v, width=w), softtorch.round),
        ("relu", lambda v: mol.relu(v, width=w), softtorch.relu),
        ("abs", lambda v: mol.abs(v, width=w), softtorch.abs),
        ("sign", lambda v: mol.sign(v, width=w), softtorch.sign),
        ("step", lambda v: mol.step(v, width=w), softtorch.heaviside),
    ]:
        rows.append((name, ours, "SoftTorch", functools.partial(theirs, softness=w)))
    return rows


def _jax_times(jax: Any, fn: Callable[[Any], Any], data: Any, repeat: int) -> tuple[float, float]:
    forward = jax.jit(fn)
    # a weighted sum: XLA simplifies the gradient of a plain sum (softmax sums to 1)
    shape = jax.eval_shape(fn, data)
    weights = jax.numpy.linspace(0.5, 1.5, math.prod(shape.shape), dtype=shape.dtype)
    weights = weights.reshape(shape.shape)
    both = jax.jit(jax.value_and_grad(lambda v: (fn(v) * weights).sum()))

    def run_forward() -> object:
        return forward(data).block_until_ready()

    def run_both() -> object:
        return both(data)[1].block_until_ready()

    return median_seconds(run_forward, repeat), median_seconds(run_both, repeat)


def jax_table(size: int, rows: int, repeat: int) -> None:
    """mollifier under jax.jit against jax.nn, forward and value_and_grad."""
    import jax
    import jax.numpy as jnp

    w = 0.1
    x = jnp.asarray(torch.randn(size).numpy() * 3)
    matrix = jnp.asarray(torch.randn(rows, rows).numpy())
    cases_ = [
        ("relu (logistic)", "jax.nn.softplus", lambda v: mol.relu(v, width=w),
         lambda v: w * jax.nn.softplus(v / w), x),
        ("step (logistic)", "jax.nn.sigmoid", lambda v: mol.step(v, width=w),
         lambda v: jax.nn.sigmoid(v / w), x),
        ("gelu", "jax.nn.gelu", mol.gelu, lambda v: jax.nn.gelu(v, approximate=False), x),
        ("floor (logistic)", "jnp.floor", lambda v: mol.floor(v, width=w), jnp.floor, x),
        *[(f"floor (logistic, w={fw:g})", "jax.nn.softplus",
           lambda v, fw=fw: mol.floor(v, width=fw), jax.nn.softplus, x) for fw in (0.1, 0.3, 1.0)],
        ("round (gaussian)", "jax.nn.softplus",
         lambda v: mol.round(v, width=w, kernel="gaussian"), jax.nn.softplus, x),
        ("logsumexp", "jax.nn.logsumexp", lambda v: mol.logsumexp(v, width=w),
         lambda v: w * jax.nn.logsumexp(v / w, axis=-1), matrix),
        ("softmax", "jax.nn.softmax", lambda v: mol.softmax(v, width=w),
         lambda v: jax.nn.softmax(v / w, axis=-1), matrix),
    ]  # fmt: skip
    print(f"\njax {jax.__version__} (jax.jit, CPU), same data\n")
    print("| op | vs | fwd ms | fwd ratio | value_and_grad ms | ratio |")
    print("|---|---|---|---|---|---|")
    for name, native_name, ours, native, data in cases_:
        times = [_jax_times(jax, fn, data, repeat) for fn in (ours, native)]
        (fwd, bwd), (nfwd, nbwd) = times
        cells = [name, native_name, f"{fwd * 1e3:.1f}", f"{fwd / nfwd:.2f}",
                 f"{bwd * 1e3:.1f}", f"{bwd / nbwd:.2f}"]  # fmt: skip
        print("| " + " | ".join(cells) + " |", flush=True)
    residual_table(jax, jnp)


def _residuals(jax: Any, fn: Callable[[Any], Any], data: Any) -> tuple[int, int]:
    """``(residuals, full-size residuals)`` that ``jax.grad`` keeps for backward."""
    import contextlib
    import io

    from jax.ad_checkpoint import print_saved_residuals

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        # a constant weight, so that softmax's gradient is not identically zero
        weights = jax.numpy.linspace(1.0, 2.0, data.size).reshape(data.shape)
        print_saved_residuals(lambda v: (fn(v) * weights).sum(), data)
    lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
    shape = "[" + ",".join(str(s) for s in data.shape) + "]"
    return len(lines), sum(shape in line for line in lines)


def residual_table(jax: Any, jnp: Any) -> None:
    """What ``jax.grad`` keeps for backward: mollifier against jax.nn (1000 elements)."""
    w = 0.1
    x = jnp.linspace(-3.0, 3.0, 1000)
    matrix = jnp.ones((8, 1000))
    rows = [
        ("relu (gaussian)", lambda v: mol.relu(v, width=w, kernel="gaussian"),
         "jax.nn.gelu", lambda v: jax.nn.gelu(v, approximate=False), x),
        ("relu (logistic)", lambda v: mol.relu(v, width=w), "jax.nn.softplus", jax.nn.softplus, x),
        ("clip (logistic)", lambda v: mol.clip(v, -1.0, 1.0, width=w),
         "jax.nn.softplus", jax.nn.softplus, x),
        ("floor (logistic)", lambda v: mol.floor(v, width=w),
         "jax.nn.softplus", jax.nn.softplus, x),
        ("round (gaussian)", lambda v: mol.round(v, width=w, kernel="gaussian"),
         "jax.nn.softplus", jax.nn.softplus, x),
        ("gelu", mol.gelu, "jax.nn.gelu", lambda v: jax.nn.gelu(v, approximate=False), x),
        ("softmax", lambda v: mol.softmax(v, width=w), "jax.nn.softmax",
         lambda v: jax.nn.softmax(v / w), matrix),
        ("logsumexp", lambda v: mol.logsumexp(v, width=w, keepdims=True), "jax.nn.logsumexp",
         lambda v: w * jax.nn.logsumexp(v / w, axis=-1, keepdims=True), matrix),
    ]  # fmt: skip
    print("\nresiduals jax.grad keeps (all / full-size), 1000 elements or 8x1000\n")
    print("| op | mollifier | vs | jax.nn |")
    print("|---|---|---|---|")
    for name, ours, native_name, native, data in rows:
        mine, theirs = _residuals(jax, ours, data), _residuals(jax, native, data)
        print(f"| {name} | {mine[0]} / {mine[1]} | {native_name} | {theirs[0]} / {theirs[1]} |")


class PeakMemory(TorchDispatchMode):
    """The peak of the bytes held by tensors that torch operations create while it is
    active (forward and backward, autograd's saved tensors and every temporary): each
    new storage counts from its first output until the last tensor of it is freed."""

    def __init__(self, *inputs: torch.Tensor) -> None:
        super().__init__()
        self.live: dict[int, list[int]] = {}  # storage address -> [bytes, tensors]
        self.current = self.peak = 0
        # the inputs' memory is held already: their views are not new memory
        self.held = {t.untyped_storage().data_ptr() for t in inputs}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._hold(t)
        return out

    def _hold(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        address = storage.data_ptr()
        if address == 0 or address in self.held:
            return
        entry = self.live.get(address)
        if entry is None:
            entry = self.live[address] = [storage.nbytes(), 0]
            self.current += entry[0]
            self.peak = max(self.peak, self.current)
        entry[1] += 1
        weakref.finalize(t, self._release, address)

    def _release(self, address: int) -> None:
        entry = self.live.get(address)
        if entry is not None:
            entry[1] -= 1
            if entry[1] == 0:
                self.current -= entry[0]
                del self.live[address]


def peak_bytes(fn: Op, x: torch.Tensor) -> int:
    """The peak memory of ``fn(x).sum().backward()`` beyond ``x`` (see :class:`PeakMemory`)."""
    xg = x.detach().requires_grad_(True)
    with PeakMemory(xg) as tracker:
        fn(xg).sum().backward()
        xg.grad = None
    return tracker.peak


def interleaved(fns: list[Callable[[], object]], repeat: int) -> list[float]:
    """Median seconds of each of ``fns``, run in turn ``repeat`` times (after a warm-up
    of each), so that a slow spell of a shared machine hits them alike."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, spent in zip(fns, times):
            start = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def _compact_native(power: int, w: float) -> tuple[str, Op]:
    """``torch.clamp`` then a polynomial of the degree of the kernel's tail (``2n + 2``
    for ``(1 - u^2)^n``), by Horner: what a hand-written compact smoothing costs."""
    coefficients = [1.0 / (i + 1) for i in range(2 * power + 3)]

    def native(v: torch.Tensor) -> torch.Tensor:
        t = torch.clamp(v * (1.0 / w), -1.0, 1.0)
        out = torch.full_like(t, coefficients[-1])
        for c in reversed(coefficients[:-1]):
            out = out * t + c
        return out

    return f"clamp + degree {2 * power + 2}", native


class PiecewiseRow(NamedTuple):
    """One row of the piecewise tables: ``family`` is ``"ramp"`` (the ReLU family),
    ``"step"`` (step, sign) or ``"stairs"`` (floor, round), which picks the native twin."""

    label: str
    kernel: Any
    family: str
    width: float
    ours: Op


def native_counterpart(kernel: Any, family: str, w: float) -> tuple[str, Op]:
    """The native op a user would call instead: softplus for a staircase, and for the
    ReLU family (relu, abs, clip, hinge, leaky ReLU) or the step family the kernel's own
    twin."""
    if family == "stairs":
        return "F.softplus", functools.partial(F.softplus, beta=1 / w)
    ramp = family == "ramp"
    table: dict[str, tuple[str, Op]] = {
        "logistic": ("F.softplus", lambda v: F.softplus(v, beta=1 / w)) if ramp
        else ("torch.sigmoid", lambda v: torch.sigmoid(v / w)),
        "gaussian": ("F.gelu", F.gelu) if ramp
        else ("torch.special.ndtr", lambda v: torch.special.ndtr(v / w)),
        "laplace": ("torch.exp", lambda v: torch.exp(v / w)),
        "cauchy": ("torch.atan", lambda v: torch.atan(v / w)),
        "sqrt": ("torch.rsqrt", lambda v: torch.rsqrt(1.0 + (v / w) ** 2)),
    }  # fmt: skip
    if kernel.name in table:
        return table[kernel.name]
    return _compact_native(kernel.power, w)


def piecewise_cases(kernel_names: list[str]) -> list[PiecewiseRow]:
    """Every piecewise op x kernel at width 0.1, and the staircases (floor, round) at
    widths 0.1, 0.3 and 1."""
    w = 0.1
    ops: list[tuple[str, str, Callable[..., Any]]] = [
        ("relu", "ramp", lambda v, k: mol.relu(v, width=w, kernel=k)),
        ("step", "step", lambda v, k: mol.step(v, width=w, kernel=k)),
        ("sign", "step", lambda v, k: mol.sign(v, width=w, kernel=k)),
        ("abs", "ramp", lambda v, k: mol.abs(v, width=w, kernel=k)),
        ("leaky_relu", "ramp", lambda v, k: mol.leaky_relu(v, width=w, kernel=k)),
        ("clip", "ramp", lambda v, k: mol.clip(v, -1.0, 1.0, width=w, kernel=k)),
        ("hinge", "ramp", lambda v, k: mol.hinge(v, width=w, kernel=k)),
    ]
    rows: list[PiecewiseRow] = []
    probe = torch.linspace(-2.0, 2.0, 8)
    for name in kernel_names:
        for op, family, fn in ops:
            try:
                fn(probe, name)
            except ValueError:  # no closed form (relu under Cauchy: no mean)
                continue
            ours = functools.partial(fn, k=name)
            rows.append(PiecewiseRow(f"{op} ({name})", kernels[name], family, w, ours))
    for name in kernel_names:
        for op, stairs in (("floor", mol.floor), ("round", mol.round)):
            for sw in (0.1, 0.3, 1.0):
                ours = functools.partial(stairs, width=sw, kernel=name)
                label = f"{op} ({name}, w={sw:g})"
                rows.append(PiecewiseRow(label, kernels[name], "stairs", sw, ours))
    return rows


def primitive_cases(x: torch.Tensor) -> list[tuple[str, Callable[[], object]]]:
    """One pass of each elementwise kernel the formulas are built from, forward only:
    what a miss of the targets is explained by (the count of these per element)."""
    y, negative = torch.rand_like(x), -x.abs()
    mask = x > 0
    return [
        ("x.clone() (memory bandwidth)", x.clone),
        ("x * y", lambda: x * y),
        ("x.add_(0) (in place)", lambda: x.add_(0.0)),
        ("torch.where", lambda: torch.where(mask, x, y)),
        ("torch.exp (x <= 0)", lambda: torch.exp(negative)),
        ("torch.special.erfc", lambda: torch.special.erfc(x)),
        ("torch.special.erf", lambda: torch.special.erf(x)),
        ("F.gelu (its own erf)", lambda: F.gelu(x)),
        ("F.softplus", lambda: F.softplus(x)),
        ("F.softplus (x <= 0)", lambda: F.softplus(negative)),
        ("torch.sigmoid", lambda: torch.sigmoid(x)),
        ("torch.log1p", lambda: torch.log1p(y)),
        ("torch.atan", lambda: torch.atan(x)),
        ("torch.atan2", lambda: torch.atan2(x, y)),
        ("torch.sin", lambda: torch.sin(x)),
        ("torch.sqrt", lambda: torch.sqrt(y)),
        ("torch.tanh", lambda: torch.tanh(x)),
        ("torch.round", lambda: torch.round(x)),
    ]


def primitives_table(sizes: list[int], repeat: int) -> None:
    """Forward time of each primitive pass, interleaved, at each size."""
    print("| primitive (forward) | " + " | ".join(f"{_count(n)} ms" for n in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    columns = []
    for size in sizes:
        x = torch.randn(size) * 3
        cases = primitive_cases(x)
        columns.append(interleaved([run for _, run in cases], repeat))
    for i, (label, _) in enumerate(primitive_cases(torch.zeros(1))):
        print(f"| {label} | " + " | ".join(f"{c[i] * 1e3:.2f}" for c in columns) + " |")
    print()


def piecewise_table(
    sizes: list[int], kernel_names: list[str], repeat: int, compiled: bool = False
) -> None:
    """Every piecewise op x kernel, forward+backward, against its native twin: one row
    per op with the times and their ratio at each size, and the peak memory at the
    largest; ``compiled``: both under ``torch.compile`` (a fresh dynamo cache per row)."""
    counts = [_count(n) for n in sizes]
    timed = " | ".join(f"{c} ms | native | ratio" for c in counts)
    print(f"| op (kernel) | vs | {timed} | peak MB ({counts[-1]}) | native peak MB |")
    print("|---|---|" + "---|---|---|" * len(sizes) + "---|---|")
    inputs = [torch.randn(size) * 3 for size in sizes]
    for row in piecewise_cases(kernel_names):
        label, ours = row.label, row.ours
        native_name, native = native_counterpart(row.kernel, row.family, row.width)
        if compiled:
            torch._dynamo.reset()
            ours, native = torch.compile(ours), torch.compile(native)
            label, native_name = f"{label} [compiled]", f"{native_name} [compiled]"
        cells = [label, native_name]
        for x in inputs:
            xg = x.clone().requires_grad_(True)
            mine, theirs = interleaved([_step_of(ours, xg), _step_of(native, xg)], repeat)
            cells += [f"{mine * 1e3:.1f}", f"{theirs * 1e3:.1f}", f"{mine / theirs:.2f}"]
        if compiled:
            cells += ["–", "–"]
        else:
            x = inputs[-1]
            cells += [f"{peak_bytes(ours, x) / 2**20:.0f}", f"{peak_bytes(native, x) / 2**20:.0f}"]
        print("| " + " | ".join(cells) + " |", flush=True)


def _jax_native(jax: Any, kernel: Any, family: str, w: float) -> tuple[str, Callable[[Any], Any]]:
    """The jax.nn / jnp twin of :func:`native_counterpart`."""
    jnp = jax.numpy
    ramp = family == "ramp"
    table: dict[str, tuple[str, Callable[[Any], Any]]] = {
        "logistic": ("jax.nn.softplus", lambda v: w * jax.nn.softplus(v / w)) if ramp
        else ("jax.nn.sigmoid", lambda v: jax.nn.sigmoid(v / w)),
        "gaussian": ("jax.nn.gelu", lambda v: jax.nn.gelu(v, approximate=False)) if ramp
        else ("ndtr", lambda v: jax.scipy.special.ndtr(v / w)),
        "laplace": ("jnp.exp", lambda v: jnp.exp(v / w)),
        "cauchy": ("jnp.arctan", lambda v: jnp.arctan(v / w)),
        "sqrt": ("lax.rsqrt", lambda v: jax.lax.rsqrt(1.0 + (v / w) ** 2)),
    }  # fmt: skip
    if family == "stairs":
        return "jax.nn.softplus", lambda v: w * jax.nn.softplus(v / w)
    if kernel.name in table:
        return table[kernel.name]
    coefficients = [1.0 / (i + 1) for i in range(2 * kernel.power + 3)]

    def compact(v: Any) -> Any:
        t = jnp.clip(v / w, -1.0, 1.0)
        out = jnp.full_like(t, coefficients[-1])
        for c in reversed(coefficients[:-1]):
            out = out * t + c
        return out

    return f"clip + degree {2 * kernel.power + 2}", compact


def jax_piecewise_table(sizes: list[int], kernel_names: list[str], repeat: int) -> None:
    """Every piecewise op x kernel under jax.jit, forward and value_and_grad, against
    its jax.nn / jnp twin (the rows of :func:`piecewise_table`), one row per op."""
    import jax

    counts = [_count(n) for n in sizes]
    timed = " | ".join(f"{c} fwd ms | ratio | {c} value_and_grad ms | ratio" for c in counts)
    print(f"\njax {jax.__version__} (jax.jit, CPU), float32, median of {repeat}\n")
    print(f"| op (kernel) | vs | {timed} |")
    print("|---|---|" + "---|---|---|---|" * len(sizes))
    inputs = [jax.numpy.asarray(torch.randn(size).numpy() * 3) for size in sizes]
    for row in piecewise_cases(kernel_names):
        native_name, native = _jax_native(jax, row.kernel, row.family, row.width)
        cells = [row.label, native_name]
        for x in inputs:
            fwd, both = _jax_times(jax, row.ours, x, repeat)
            nfwd, nboth = _jax_times(jax, native, x, repeat)
            cells += [f"{fwd * 1e3:.1f}", f"{fwd / nfwd:.2f}", f"{both * 1e3:.1f}",
                      f"{both / nboth:.2f}"]  # fmt: skip
        print("| " + " | ".join(cells) + " |", flush=True)


def _step_of(fn: Op, xg: torch.Tensor) -> Callable[[], None]:
    def step() -> None:  # forward and backward
        fn(xg).sum().backward()
        xg.grad = None

    return step


def _count(size: int) -> str:
    return f"{size // 2**20}M" if size % 2**20 == 0 else str(size)


def positive_int(text: str) -> int:
    """An argparse type: a positive integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {value}")
    return value


def main(
    argv: list[str] | None = None, parser_class: type[argparse.ArgumentParser] | None = None
) -> None:
    parser = (parser_class or argparse.ArgumentParser)(
        prog="mollifier bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--size", type=positive_int, default=[16 * 2**20], nargs="+",
                        help="elements, one or more sizes (default 16M)")  # fmt: skip
    parser.add_argument("--rows", type=positive_int, default=4096,
                        help="matrix side for reductions")  # fmt: skip
    parser.add_argument("--repeat", type=positive_int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--jax", action="store_true", help="also time jax.jit against jax.nn")
    parser.add_argument(
        "--piecewise",
        action="store_true",
        help="instead: every piecewise op x kernel, fwd+bwd and peak memory",
    )
    parser.add_argument(
        "--kernel",
        action="append",
        choices=sorted(kernels),
        help="with --piecewise: this kernel only (repeatable; default all)",
    )
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.piecewise:
        print(
            f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} "
            f"threads, float32, eager, median of {args.repeat} (interleaved)\n"
        )
        chosen = args.kernel or list(kernels)
        primitives_table(args.size, args.repeat)
        piecewise_table(args.size, chosen, args.repeat)
        if args.compile:
            print()
            piecewise_table(args.size, chosen, args.repeat, compiled=True)
        if args.jax:
            jax_piecewise_table(args.size, chosen, args.repeat)
        return
    for size in args.size:
        _tables(args, size)


def _tables(args: argparse.Namespace, size: int) -> None:
    x = torch.randn(size) * 3
    matrix = torch.randn(args.rows, args.rows)
    print(
        f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads, "
        f"{size} float32 elements, {args.rows}x{args.rows} matrix, median of {args.repeat}\n"
    )
    print(
        "| op | vs | fwd ms | fwd ratio | fwd+bwd ms | fwd+bwd ratio "
        "| saved for bwd MB | native saved MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    modes = [("eager", lambda f: f)]
    if args.compile:
        modes.append(("compiled", torch.compile))
    for mode, wrap in modes:
        for name, native_name, ours, native, data in cases(x, matrix):
            torch._dynamo.reset()  # a fresh cache per row: no recompile limit, no reuse
            ours_c, native_c = wrap(ours), wrap(native)
            fwd, both = measure(ours_c, data, args.repeat)
            nfwd, nboth = measure(native_c, data, args.repeat)
            saved = saved_bytes(ours, data) / 2**20
            nsaved = saved_bytes(native, data) / 2**20
            label = name if mode == "eager" else f"{name} [compiled]"
            timings = [
                f"{fwd * 1e3:.1f}",
                f"{fwd / nfwd:.2f}",
                f"{both * 1e3:.1f}",
                f"{both / nboth:.2f}",
            ]
            cells = [label, native_name, *timings, f"{saved:.0f}", f"{nsaved:.0f}"]
            print("| " + " | ".join(cells) + " |", flush=True)
    print("\n| op | peer | mollifier fwd+bwd ms | peer fwd+bwd ms | speed-up "
          "| mollifier saved MB | peer saved MB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for mode, wrap in modes:
        for name, ours, peer_name, peer in peers(x):
            torch._dynamo.reset()
            _, both = measure(wrap(ours), x, args.repeat)
            _, pboth = measure(wrap(peer), x, args.repeat)
            label = name if mode == "eager" else f"{name} [compiled]"
            cells = [label, peer_name, f"{both * 1e3:.1f}", f"{pboth * 1e3:.1f}",
                     f"{pboth / both:.1f}x", f"{saved_bytes(ours, x) / 2**20:.0f}",
                     f"{saved_bytes(peer, x) / 2**20:.0f}"]  # fmt: skip
            print("| " + " | ".join(cells) + " |", flush=True)
    if args.jax:
        jax_table(size, args.rows, args.repeat)


if __name__ == "__main__":
    main()
