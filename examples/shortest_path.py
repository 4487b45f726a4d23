"""Learning to pick shortest paths on a grid with the Fenchel-Young loss.

Each instance is a 5 x 5 grid whose cells have 5 features; a cell's true cost is an
unknown positive function of its features, and the target is the cheapest monotone
path (steps right or down) from the top-left to the bottom-right cell, as a 0/1 vector
of the 25 cells. A linear model predicts the costs from the features; the path solver
(dynamic programming) has zero gradient almost everywhere, so the model is trained
through ``mollifier.fenchel_young_loss``: the perturbed solver's expected path minus
the target path is the gradient (Berthet et al. 2020). Nothing about the costs is ever
seen: only the optimal paths.

Run ``python examples/shortest_path.py`` (a few seconds on a CPU); the numbers are in
docs/examples.md.
"""

from __future__ import annotations

import argparse

import torch

import mollifier as mol

SIDE = 5
FEATURES = 5


def shortest_path(theta: torch.Tensor) -> torch.Tensor:
    """The monotone path maximizing ``<path, theta>`` (costs ``-theta``), batched over
    the leading axes: ``(..., SIDE * SIDE) -> (..., SIDE * SIDE)`` of 0/1."""
    cost = -theta.reshape(*theta.shape[:-1], SIDE, SIDE)
    total = torch.empty_like(cost)  # cheapest cost from the top-left to each cell
    for i in range(SIDE):
        for j in range(SIDE):
            if i == 0 and j == 0:
                before = torch.zeros_like(cost[..., 0, 0])
            elif i == 0:
                before = total[..., 0, j - 1]
            elif j == 0:
                before = total[..., i - 1, 0]
            else:
                before = torch.minimum(total[..., i - 1, j], total[..., i, j - 1])
            total[..., i, j] = cost[..., i, j] + before
    flat = total.reshape(*theta.shape)
    path = torch.zeros_like(theta)
    i = torch.full(theta.shape[:-1], SIDE - 1, dtype=torch.long)
    j = torch.full(theta.shape[:-1], SIDE - 1, dtype=torch.long)
    for _ in range(2 * SIDE - 1):  # back from the bottom-right cell
        path.scatter_(-1, (i * SIDE + j).unsqueeze(-1), 1.0)
        up = flat.gather(-1, ((i - 1).clamp(min=0) * SIDE + j).unsqueeze(-1)).squeeze(-1)
        left = flat.gather(-1, (i * SIDE + (j - 1).clamp(min=0)).unsqueeze(-1)).squeeze(-1)
        go_up = (j == 0) | ((i > 0) & (up <= left))
        i, j = torch.where(go_up, i - 1, i), torch.where(go_up, j, j - 1)
    return path


def make_data(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``(count, 25, FEATURES)`` and the true costs ``(count, 25)``."""
    features = torch.randn(count, SIDE * SIDE, FEATURES, generator=generator, dtype=torch.float64)
    weights = torch.tensor([1.0, -0.6, 0.4, 0.0, 0.8], dtype=torch.float64)
    costs = torch.nn.functional.softplus(2.0 * features @ weights) + 0.2  # unknown to the model
    return features, costs


def regret(model: torch.Tensor, features: torch.Tensor, costs: torch.Tensor) -> tuple[float, float]:
    """Mean relative excess cost of the predicted paths, and the fraction that are optimal."""
    with torch.no_grad():
        chosen = shortest_path(features @ model)
        best = shortest_path(-costs)
        excess = ((chosen - best) * costs).sum(-1) / (best * costs).sum(-1)
        exact = (chosen == best).all(-1).double().mean()
    return float(excess.mean()), float(exact)


def main(
    steps: int = 150, train: int = 200, test: int = 200, samples: int = 32, seed: int = 0
) -> dict[str, float]:
    """Train the linear cost model; returns the test regret before and after."""
    generator = torch.Generator().manual_seed(seed)
    train_x, train_cost = make_data(train, generator)
    test_x, test_cost = make_data(test, generator)
    targets = shortest_path(-train_cost)  # the only supervision: optimal paths
    model = torch.zeros(FEATURES, dtype=torch.float64)
    model[0] = -0.1  # a poor start: a nearly constant cost
    model.requires_grad_()
    before = regret(model, test_x, test_cost)
    optimizer = torch.optim.Adam([model], lr=0.05)
    noise = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        optimizer.zero_grad()
        theta = train_x @ model  # predicted negated costs
        loss = mol.fenchel_young_loss(
            theta, targets, maximizer=shortest_path, width=0.5, kernel="gaussian",
            samples=samples, seed=noise,
        )  # fmt: skip
        loss.mean().backward()
        optimizer.step()
    after = regret(model, test_x, test_cost)
    return {
        "regret_before": before[0], "optimal_before": before[1],
        "regret_after": after[0], "optimal_after": after[1],
    }  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    result = main(steps=arguments.steps, seed=arguments.seed)
    print(
        f"test regret {result['regret_before']:.3f} -> {result['regret_after']:.3f}; "
        f"optimal paths {result['optimal_before']:.0%} -> {result['optimal_after']:.0%}"
    )
