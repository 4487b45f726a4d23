"""Measure the numerical engine's accuracy control: a markdown table for docs/accuracy.md.

Run ``python tools/numerical_accuracy.py`` (a few minutes); the output is pasted into
docs/accuracy.md. For each function x kernel x width it reports the largest error in
value and in first derivative (Stein gradient through ``torch.autograd``) over 41 points
in [-2, 2] at the defaults (``tol=1e-9``), the largest error estimate
(``return_error=True``), the nodes used (the smallest budget at which no point warns;
``budget`` where even the default budget does not suffice and an ``AccuracyWarning`` is
raised) and the time. References are the exact closed forms (``mol.floor``, ``mol.frac``,
``mol.step``, ``mol.relu``) and ``E[sin(x - wU)] = sin(x) phi(w)``; jumps are one unit apart,
so the width is also the width in units of the jump spacing.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

import mollifier as mol

FUNCTIONS = {
    "floor": (torch.floor, mol.floor),
    "sawtooth": (lambda y: y - torch.floor(y), mol.frac),
    "step": (lambda y: (y >= 0).to(y.dtype), mol.step),
    "relu": (torch.relu, mol.relu),
    "sin": (torch.sin, None),
}
DEFAULT_NODES = 480
DEFAULT_MAX_NODES = 4096 * 30


def reference(name: str, x: np.ndarray, kernel: str, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact value and derivative of the smoothed function."""
    if name == "sin":
        damping = float(mol.kernels[kernel].char_fn(width))
        return np.sin(x) * damping, np.cos(x) * damping
    op = FUNCTIONS[name][1]
    t = torch.tensor(x, requires_grad=True)
    value = op(t, kernel=kernel, width=width)
    (grad,) = torch.autograd.grad(value.sum(), t)
    return value.detach().numpy(), grad.numpy()


def measure(name: str, kernel: str, width: float, x: np.ndarray, max_nodes: int) -> dict:
    """Errors, estimate and whether the budget ``max_nodes`` sufficed."""
    g = mol.smooth(FUNCTIONS[name][0], kernel=kernel, width=width, max_nodes=max_nodes)
    t = torch.tensor(x, requires_grad=True)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", mol.AccuracyWarning)
        value, error = g(t, return_error=True)
        (grad,) = torch.autograd.grad(value.sum(), t)
    seconds = time.perf_counter() - start
    exact_value, exact_grad = reference(name, x, kernel, width)
    return {
        "value": float(np.max(np.abs(value.detach().numpy() - exact_value))),
        "grad": float(np.max(np.abs(grad.numpy() - exact_grad))),
        "estimate": float(np.max(error.numpy())),
        "warned": bool(caught),
        "seconds": seconds,
    }


def row(name: str, kernel: str, width: float, x: np.ndarray) -> str:
    budget = DEFAULT_NODES
    while True:
        found = measure(name, kernel, width, x, budget)
        if not found["warned"] or budget >= DEFAULT_MAX_NODES:
            break
        budget = min(2 * budget, DEFAULT_MAX_NODES)
    default = measure(name, kernel, width, x, DEFAULT_MAX_NODES)
    used = f"{budget:,}" if not default["warned"] else "budget: warns"
    return (
        f"| {name} | {kernel} | {width:g} | {default['value']:.0e} | {default['grad']:.0e} | "
        f"{default['estimate']:.0e} | {used} | {default['seconds']:.2f} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--widths", type=float, nargs="+", default=[0.001, 0.1, 1.0, 10.0, 100.0, 1000.0]
    )
    parser.add_argument("--functions", nargs="+", default=list(FUNCTIONS))
    parser.add_argument(
        "--kernels", nargs="+",
        default=["gaussian", "logistic", "laplace", "epanechnikov", "cauchy", "sqrt"],
    )  # fmt: skip
    args = parser.parse_args(argv)
    x = np.linspace(-2.0, 2.0, 41) + 0.00123  # off the grid of jumps
    print("| f | kernel | width | value error | gradient error | estimate | nodes used | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.functions:
        for kernel in args.kernels:
            if name == "relu" and kernel == "cauchy":
                continue  # diverges: ValueError
            for width in args.widths:
                print(row(name, kernel, width, x), flush=True)


if __name__ == "__main__":
    main()
