"""Benchmark mollifier against native torch ops and peers, side by side in one process.

Run ``mollifier bench`` or ``python benchmarks/bench.py`` (``--size 1000000 --repeat 3``
for a quick look). Needs torch (extra ``torch``).
Prints a markdown table: median time of forward and forward+backward, the ratio to the
native op measured in the same process, and the bytes autograd saves for backward.
The seed's windowed floor (sum over n = -M..N of sigmoid(t (x - n)), M=5, N=10, t=10)
is written out plainly below as a peer; SoftTorch is used when it is installed.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import mollifier as mol


def seed_floor(x: torch.Tensor, t: float = 10.0, m: int = 5, n: int = 10) -> torch.Tensor:
    """The seed post's smooth floor: O(M + N) sigmoids, valid only for -M << x << N."""
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
        ("floor (logistic)", "torch.round", lambda v: mol.floor(v, width=w), torch.round, x),
        ("round (gaussian)", "torch.round",
         lambda v: mol.round(v, width=w, kernel="gaussian"), torch.round, x),
        ("seed floor (M=5, N=10)", "torch.round", seed_floor, torch.round, x),
        ("logsumexp", "torch.logsumexp", lambda v: mol.logsumexp(v, width=w), lse, matrix),
        ("softmax", "torch.softmax", lambda v: mol.softmax(v, width=w), soft, matrix),
        ("clone (bandwidth floor)", "x.clone", lambda v: v.clone(), lambda v: v.clone(), x),
    ]  # fmt: skip
    try:  # a peer, when installed
        import softtorch

        rows.append(("SoftTorch round", "torch.round", softtorch.round, torch.round, x))
    except Exception:  # any import failure just drops the row
        pass
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mollifier bench", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16 * 2**20, help="elements (default 16M)")
    parser.add_argument("--rows", type=int, default=4096, help="matrix side for reductions")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    x = torch.randn(args.size) * 3
    matrix = torch.randn(args.rows, args.rows)
    print(
        f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads, "
        f"{args.size} float32 elements, {args.rows}x{args.rows} matrix, median of {args.repeat}\n"
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


if __name__ == "__main__":
    main()
