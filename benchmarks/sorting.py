"""Time the sorting family (rank, sort) against torch.sort and the peers that import,
side by side in one process: forward and forward+backward medians, batch 256.

    python benchmarks/sorting.py [--sizes 16 256 4096] [--batch 256] [--repeat 5] [--jax]

Peers, each timed when it imports: torchsort (``soft_sort``/``soft_rank``, C++ PAV),
fast-soft-sort's ``pytorch_ops`` (numba PAV, row by row in NumPy; not on PyPI: put its
source on ``PYTHONPATH``) and diffsort (bitonic network of sigmoid-mixed comparators).
The loss is ``sum(c * f(x))`` with fixed random ``c``.
"""

from __future__ import annotations

import argparse
import importlib
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

import mollifier as mol

WIDTH = 0.1
STRENGTH = {"regularization_strength": WIDTH}  # the peers' name for the width


CLOCK = time.perf_counter


def median_seconds(run: Callable[[], object], repeat: int) -> float:
    run()  # warm-up (and JAX's compilation)
    times = []
    for _ in range(repeat):
        start = CLOCK()
        run()
        times.append(CLOCK() - start)
    return statistics.median(times)


def measure(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, repeat: int):
    c = torch.randn_like(x)

    def forward() -> None:
        with torch.no_grad():
            fn(x)

    def both() -> None:
        v = x.detach().requires_grad_(True)
        (fn(v) * c).sum().backward()

    return median_seconds(forward, repeat), median_seconds(both, repeat)


def _optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception:  # an absent or broken peer is left out of the table
        return None


def cases(n: int) -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
    rows: list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = [
        ("torch.sort", lambda v: torch.sort(v, dim=-1).values),
        ("mol.sort l2", lambda v: mol.sort(v, width=WIDTH)),
        ("mol.sort kl", lambda v: mol.sort(v, width=WIDTH, method="kl")),
        ("mol.rank l2", lambda v: mol.rank(v, width=WIDTH, method="l2")),
        ("mol.rank kl", lambda v: mol.rank(v, width=WIDTH, method="kl")),
        ("mol.sort network", lambda v: mol.sort(v, width=WIDTH, method="network")),
    ]
    if n <= 256:  # O(n^2): 4G comparisons at n = 4096
        rows.append(("mol.rank pairwise", lambda v: mol.rank(v, width=WIDTH)))
    torchsort = _optional("torchsort")
    if torchsort is not None:
        rows += [
            ("torchsort.soft_sort l2", lambda v: torchsort.soft_sort(v, **STRENGTH)),
            ("torchsort.soft_rank l2", lambda v: torchsort.soft_rank(v, **STRENGTH)),
        ]
    fss = _optional("fast_soft_sort.pytorch_ops")
    if fss is not None:
        rows += [
            ("fast-soft-sort soft_sort l2", lambda v: fss.soft_sort(v, **STRENGTH)),
            ("fast-soft-sort soft_rank l2", lambda v: fss.soft_rank(v, **STRENGTH)),
        ]
    diffsort = _optional("diffsort")
    if diffsort is not None and n <= 16:  # n x n matrices per layer: 45 s a call at n = 256
        network = diffsort.DiffSortNet("bitonic", n, steepness=1.0 / WIDTH)
        rows.append(("diffsort bitonic", lambda v: network(v)[0]))
    return rows


def jax_rows(n: int, batch: int, repeat: int) -> list[tuple[str, float]]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    x = jnp.asarray(np.random.default_rng(0).normal(size=(batch, n)), dtype=jnp.float32)
    c = jnp.asarray(np.random.default_rng(1).normal(size=(batch, n)), dtype=jnp.float32)
    out = []
    for name, fn in (
        ("jnp.sort", lambda v: jnp.sort(v, axis=-1)),
        ("mol.sort l2", lambda v: mol.sort(v, width=WIDTH)),
        ("mol.rank l2", lambda v: mol.rank(v, width=WIDTH, method="l2")),
        ("mol.rank kl", lambda v: mol.rank(v, width=WIDTH, method="kl")),
    ):
        step = jax.jit(jax.value_and_grad(lambda v, f=fn: jnp.sum(c * f(v))))
        out.append((name, median_seconds(lambda s=step: jax.block_until_ready(s(x)), repeat)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 256, 4096])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--jax", action="store_true", help="add a jax.jit table")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time with the process's CPU time (steadier than wall time on a shared machine)",
    )
    args = parser.parse_args()
    if args.cpu_time:
        global CLOCK
        CLOCK = time.process_time
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    clock = "CPU time" if args.cpu_time else "wall time"
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, "
          f"width {WIDTH}, float32, medians of {args.repeat} ({clock})\n")  # fmt: skip
    print("| op | n | fwd ms | fwd+bwd ms | fwd+bwd / torch.sort |")
    print("|---|---|---|---|---|")
    totals: dict[str, dict[int, float]] = {}
    for n in args.sizes:
        x = torch.randn(args.batch, n)
        base = None
        for name, fn in cases(n):
            forward, both = measure(fn, x, args.repeat)
            base = both if base is None else base
            totals.setdefault(name, {})[n] = both
            print(f"| {name} | {n} | {forward * 1e3:.2f} | {both * 1e3:.2f} | {both / base:.1f} |",
                  flush=True)  # fmt: skip
    if len(args.sizes) > 1:
        small, large = args.sizes[-2], args.sizes[-1]
        nlogn = large * math.log2(large) / (small * math.log2(small))
        print(f"\nScaling from n = {small} to {large} (n log n grows {nlogn:.1f}x):\n")
        print("| op | fwd+bwd growth |")
        print("|---|---|")
        for name, by_n in totals.items():
            if small in by_n and large in by_n:
                print(f"| {name} | {by_n[large] / by_n[small]:.1f}x |")
    if args.jax:
        print("\nJAX, jax.jit(jax.value_and_grad), float32:\n")
        print("| op | n | ms |")
        print("|---|---|---|")
        for n in args.sizes:
            for name, seconds in jax_rows(n, args.batch, args.repeat):
                print(f"| {name} | {n} | {seconds * 1e3:.2f} |", flush=True)


if __name__ == "__main__":
    main()
