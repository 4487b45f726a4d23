"""Measure the numerical engine's accuracy: nodes -> max error, as a markdown table.

Run ``python tools/numerical_accuracy.py`` (about a minute); the output is pasted into
docs/accuracy.md. References are the exact closed forms (``mol.floor``, ``mol.relu``,
``mol.abs``) and ``E[sin(x - wU)] = sin(x) phi(w)`` for a smooth function.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import mollifier as mol

FUNCTIONS = {
    "floor": (np.floor, torch.floor, mol.floor),
    "relu": (lambda y: np.maximum(y, 0.0), torch.relu, mol.relu),
    "abs": (np.abs, torch.abs, mol.abs),
    "sin": (np.sin, torch.sin, None),
}


def reference(name: str, x: np.ndarray, kernel: str, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact value and derivative of the smoothed function."""
    if name == "sin":
        damping = float(mol.kernels[kernel].char_fn(width))
        return np.sin(x) * damping, np.cos(x) * damping
    op = FUNCTIONS[name][2]
    t = torch.tensor(x, requires_grad=True)
    value = op(t, kernel=kernel, width=width)
    (grad,) = torch.autograd.grad(value.sum(), t)
    return value.detach().numpy(), grad.numpy()


def errors(name: str, kernel: str, width: float, nodes: int, x: np.ndarray) -> tuple[float, float]:
    exact_value, exact_grad = reference(name, x, kernel, width)
    g = mol.smooth(FUNCTIONS[name][1], kernel=kernel, width=width, nodes=nodes)
    t = torch.tensor(x, requires_grad=True)
    value = g(t)
    (grad,) = torch.autograd.grad(value.sum(), t)
    return (
        float(np.max(np.abs(value.detach().numpy() - exact_value))),
        float(np.max(np.abs(grad.numpy() - exact_grad))),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=float, nargs="+", default=[0.3, 1.0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    parser.add_argument(
        "--kernels", nargs="+", default=["gaussian", "logistic", "laplace", "epanechnikov"]
    )
    args = parser.parse_args(argv)
    x = np.linspace(-3.0, 3.0, 601) + 0.00123  # off the grid of jumps
    names = list(FUNCTIONS)
    print("| kernel | width | nodes | " + " | ".join(f"{n} value / gradient" for n in names) + " |")
    print("|---" * (3 + len(names)) + "|")
    for kernel in args.kernels:
        for width in args.width:
            for nodes in args.nodes:
                cells = [
                    "{:.0e} / {:.0e}".format(*errors(n, kernel, width, nodes, x)) for n in names
                ]
                print(f"| {kernel} | {width:g} | {nodes} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
