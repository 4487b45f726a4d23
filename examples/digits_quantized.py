"""Quantized activations on scikit-learn's digits: straight-through vs smooth vs annealed.

A 64-64-10 network whose hidden activations are clipped to [0, 1] and quantized to
4 levels (step 1/3). Three ways to train through the quantizer:

* ``ste``: hard rounding forward, identity gradient (the classic straight-through
  estimator);
* ``smooth``: the smooth clip and quantizer of mollifier at a fixed width;
* ``annealed``: the same, the width shrinking exponentially toward 0 during training.

Every model is evaluated with the **hard** quantizer (``mollifier.nn.harden``). Run
``python examples/digits_quantized.py`` for the table in docs/examples.md.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from mollifier import nn as mnn

LEVELS_STEP = 1.0 / 3.0


class StraightThroughQuantize(nn.Module):
    """clip to [0, 1] and round to multiples of 1/3; identity gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hard = torch.round(torch.clamp(x, 0.0, 1.0) / LEVELS_STEP) * LEVELS_STEP
        return x + (hard - x).detach()


def smooth_quantizer(width: float) -> nn.Module:
    return nn.Sequential(
        mnn.SmoothClip(0.0, 1.0, width=width, kernel="logistic"),
        mnn.SmoothQuantize(LEVELS_STEP, width=width, kernel="logistic"),
    )


def model_for(regime: str, width: float) -> nn.Module:
    quantizer = StraightThroughQuantize() if regime == "ste" else smooth_quantizer(width)
    return nn.Sequential(nn.Linear(64, 64), quantizer, nn.Linear(64, 10))


def data(seed: int) -> tuple[torch.Tensor, ...]:
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data / 16.0, digits.target, test_size=0.3, random_state=seed, stratify=digits.target
    )
    as_x = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    as_y = lambda a: torch.tensor(a, dtype=torch.long)  # noqa: E731
    return as_x(x_train), as_y(y_train), as_x(x_test), as_y(y_test)


def run(regime: str, seed: int, steps: int = 400, width: float = 0.05) -> float:
    """Train one model; returns its test accuracy with the hard quantizer."""
    torch.manual_seed(seed)
    x_train, y_train, x_test, y_test = data(seed)
    model = model_for(regime, width)
    schedule = mnn.WidthSchedule("exponential", start=0.2, end=0.002, steps=steps)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(steps):
        if regime == "annealed":
            schedule.apply(model, step)
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x_train), y_train)
        loss.backward()
        optimizer.step()
    mnn.harden(model)
    with torch.no_grad():
        return float((model(x_test).argmax(dim=1) == y_test).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    print(f"digits, 64-64-10, 4-level activations, Adam lr 1e-2, {args.steps} full-batch steps")
    print("| training | test accuracy, hard quantizer (mean ± std) | per seed |")
    print("|---|---|---|")
    for regime in ("ste", "smooth", "annealed"):
        scores = [run(regime, seed, args.steps) for seed in range(args.seeds)]
        spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
        per_seed = ", ".join(f"{s:.3f}" for s in scores)
        print(
            f"| {regime} | {statistics.mean(scores):.3f} ± {spread:.3f} | {per_seed} |", flush=True
        )


if __name__ == "__main__":
    main()
