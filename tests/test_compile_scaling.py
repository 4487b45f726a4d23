"""Compiled training: torch.compile(fullgraph=True, dynamic=True) of forward and backward
without graph breaks and without recompiles when the batch size, the reduced size or an
annealed width changes (counted with torch._dynamo's CompileCounter on small models).

Every op's fullgraph trace at fixed shapes is in test_transforms.py; here the shapes and
widths move. Staircase modules are left out: their term count is chosen from the
width's value (see docs/scaling.md).
"""

from __future__ import annotations

import torch
from torch._dynamo.testing import CompileCounter

import mollifier as mol
from mollifier import nn as mnn


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 8),
        mnn.SmoothReLU(kernel="gaussian", width=0.5),
        mnn.SAU(),
        mnn.SmoothClip(-1.0, 1.0, kernel="uniform", width=0.3),
        mnn.SmoothGELU(kernel="gaussian", learnable_width=True),
        mnn.SmoothLeakyReLU(0.2, per_channel=8, dim=-1, learnable_width=True),
        mnn.SmoothSoftmax(dim=-1, width=0.5),
        mnn.SmoothNorm(dim=-1, width=0.1, learnable_width=True),
    ).double()


def _step(model, compiled, x):
    model.zero_grad()
    out = compiled(x)
    out.sum().backward()
    return out, [p.grad.clone() for p in model.parameters()]


def test_training_loop_with_annealed_widths_compiles_once():
    model = _model()
    counter = CompileCounter()
    compiled = torch.compile(model, backend=counter, fullgraph=True, dynamic=True)
    schedule = mnn.WidthSchedule("exponential", start=0.5, end=0.05, steps=6)
    for step in range(6):
        schedule.apply(model, step)  # the fixed widths move every step
        x = torch.randn(3 + step % 3, 5, dtype=torch.float64)  # and the batch size
        out, grads = _step(model, compiled, x)
        want, want_grads = _step(model, model, x)  # eager, at the same widths
        torch.testing.assert_close(out, want)
        for got, expected in zip(grads, want_grads):
            torch.testing.assert_close(got, expected)
    assert counter.frame_count == 1  # one graph: no graph break, no recompile


def test_reductions_compile_once_over_reduced_sizes():
    def f(x, w):
        return (
            mol.logsumexp(x, axis=-1, width=0.3)
            + mol.max(x, axis=-1, width=w, method="softmax")
            + mol.argmax(x, axis=-1, width=0.3, index=True)
            + mol.norm(x, axis=-1, width=w)
            + mol.min(x, axis=-1, width=0.2)
        )

    counter = CompileCounter()
    compiled = torch.compile(f, backend=counter, fullgraph=True, dynamic=True)
    for rows, n in ((2, 3), (4, 7), (3, 11)):
        x = torch.randn(rows, n, dtype=torch.float64, requires_grad=True)
        w = torch.full((1,), 0.05 * n, dtype=torch.float64)  # a tensor width: annealable
        (grad,) = torch.autograd.grad(compiled(x, w).sum(), x)
        (want,) = torch.autograd.grad(f(x, w).sum(), x)
        torch.testing.assert_close(grad, want)
    assert counter.frame_count == 1
