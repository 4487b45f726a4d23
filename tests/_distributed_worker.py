"""Two gloo processes on 127.0.0.1 checking mollifier under torch.distributed.

Run by tests/test_distributed.py as ``python tests/_distributed_worker.py OUT_DIR``: it
spawns two ranks; each runs every check below and writes ``rank<r>.json`` into
``OUT_DIR``: ``{"checks": {name: "ok" or the traceback}, "counts": {...}}``, the
collectives counted by ``CommDebugMode`` per reduction (what docs/scaling.md tabulates).
The reference of every check is the same computation on the whole (unsharded) tensor
in one process; the accuracy of that computation is tested elsewhere.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

WORLD = 2
TWO_INPUTS = ("greater", "less", "equal", "maximum", "minimum")
REDUCTIONS = (
    "logsumexp", "softmax", "max", "min", "argmax", "argmin", "norm", "log_softmax", "logmeanexp"
)  # fmt: skip
SORTING = ("rank", "sort", "argsort", "topk", "quantile", "median")  # need whole slices


def slice_call(name: str, x: Any, axis: int, **knobs: Any) -> Any:
    """The sorting family, the soft booleans and ``isclose`` at ``x`` (any framework)
    along ``axis``, as one array (topk: its values and its mask side by side)."""
    import mollifier as mol
    from mollifier._catalogue import CATALOGUE

    p = 1.0 / (1.0 + 2.0 ** (-x))  # probabilities for the soft booleans
    if name == "logical_not":
        return mol.logical_not(p)
    if name in ("logical_and", "logical_or", "logical_xor"):
        return CATALOGUE[name].smooth(p, 1.0 - 0.5 * p, tnorm="minmax", **knobs)
    if name == "isclose":
        return mol.isclose(x, 0.5 * x + 0.25, **knobs)
    if name in ("all", "any"):  # the product t-norm (the minmax one is max(method="softmax"))
        return CATALOGUE[name].smooth(p, axis=axis)
    if name == "topk":  # the mask, laid out as x (its values: other reductions, below)
        knobs.pop("kernel", None)  # its comparisons are the permutahedron projection's
        return mol.topk(x, 2, axis=axis, **knobs).mask
    return CATALOGUE[name].example(x, axis=axis, **knobs)


SLICES = (*SORTING, "logical_not", "logical_and", "logical_or", "logical_xor", "all", "any",
          "isclose")  # fmt: skip
AXES = (*REDUCTIONS, *SORTING, "all", "any")  # the ops along an axis
BIG = (8, 131200)  # 1,049,600 float32 entries: 4.2 MB, past the CPU block loop's threshold


class Checks:
    def __init__(self) -> None:
        self.results: dict[str, str] = {}
        self.counts: dict[str, Any] = {}

    def run(self, name: str, check: Callable[[], None]) -> None:
        if os.environ.get("MOLLIFIER_WORKER_TRACE"):
            print(name, file=sys.stderr, flush=True)
        try:
            check()
            self.results[name] = "ok"
        except Exception:  # recorded, so that every other check still runs and reports
            self.results[name] = traceback.format_exc()


def _counts(mode: Any) -> dict[str, int]:
    return {str(op).split(".")[-1]: n for op, n in mode.get_comm_counts().items()}


def _rank_main(rank: int, out_dir: str, port: int) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    # the parent's store: its port stays bound from before the spawn to the end
    store = dist.TCPStore("127.0.0.1", port, WORLD, is_master=False)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=WORLD)
    checks = Checks()
    try:
        _all_checks(checks, rank)
    finally:
        path = os.path.join(out_dir, f"rank{rank}.json")
        with open(path, "w") as f:
            json.dump({"checks": checks.results, "counts": checks.counts}, f, indent=1)
        dist.destroy_process_group()


def _all_checks(checks: Checks, rank: int) -> None:
    import torch
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import (
        DTensor,
        Replicate,
        Shard,
        distribute_module,
        distribute_tensor,
    )
    from torch.distributed.tensor.debug import CommDebugMode

    import mollifier as mol
    from mollifier import nn as mnn
    from mollifier._catalogue import CATALOGUE

    mesh = init_device_mesh("cpu", (WORLD,))
    placements = {"Shard(0)": [Shard(0)], "Shard(1)": [Shard(1)], "Replicate": [Replicate()]}

    def close(got: Any, want: Any, rtol: float = 1e-10, atol: float = 1e-12) -> None:
        assert isinstance(got, DTensor), f"not a DTensor: {type(got).__name__}"
        torch.testing.assert_close(got.full_tensor(), want, rtol=rtol, atol=atol)

    def call(name: str, inputs: list[Any], **knobs: Any) -> Any:
        op = CATALOGUE[name]
        if name in SLICES:
            axis = knobs.pop("axis", -1)
            return slice_call(name, inputs[0], axis, **knobs)
        if name in TWO_INPUTS:
            return op.smooth(inputs[0], inputs[1], **knobs)
        if name == "where":
            return op.smooth(inputs[0], inputs[1], inputs[2], **knobs)
        if name in REDUCTIONS:
            return op.smooth(inputs[0], **knobs)
        return op.example(inputs[0], **knobs)

    def inputs_of(name: str, base: Any) -> list[Any]:
        if name in TWO_INPUTS:
            return [base, 0.5 * base.flip(0)]
        if name == "where":
            return [base, base.flip(1), -base]
        return [base]

    def kernels(name: str) -> list[str]:
        if (name in REDUCTIONS and name != "norm") or name in ("logical_not", "all", "any"):
            return [""]
        if name in SORTING:  # their default methods; the kernels are checked elementwise
            return [""]
        op = CATALOGUE[name]
        return [k for k in ("logistic", "gaussian") if op.admits(mol.get_kernel(k))]

    torch.manual_seed(0)
    small = (torch.randn(6, 8, dtype=torch.float64) * 2).clamp(-4, 4)

    # every op: values and gradients equal the one-process ones, placements kept
    def op_check(name: str, kernel: str, label: str, axis: int) -> Callable[[], None]:
        def check() -> None:
            knobs: dict[str, Any] = {"width": 0.3}
            if kernel:
                knobs["kernel"] = kernel
            if name in AXES:
                knobs["axis"] = axis
            local = [v.clone().requires_grad_() for v in inputs_of(name, small)]
            sharded = [
                distribute_tensor(v.detach(), mesh, placements[label]).requires_grad_()
                for v in local
            ]
            want = call(name, local, **knobs)
            weights = torch.linspace(-1.0, 2.0, want.numel(), dtype=want.dtype).reshape(want.shape)
            with CommDebugMode() as forward:
                got = call(name, sharded, **knobs)
            close(got, want.detach())
            if name not in AXES or name in ("softmax", "argmax", "rank", "sort", "topk"):
                assert got.placements == sharded[0].placements, got.placements
            want_grads = torch.autograd.grad((want * weights).sum(), local)
            w = distribute_tensor(weights, mesh, got.placements)
            with CommDebugMode() as backward:
                grads = torch.autograd.grad((got * w).sum(), sharded)
            for g, v, wg in zip(grads, sharded, want_grads):
                close(g, wg)
                assert g.placements == v.placements, (g.placements, v.placements)
            fwd, bwd = _counts(forward), _counts(backward)
            sharded_axis = label == f"Shard({axis})" and name in AXES
            gathers = {k: n for k, n in {**fwd, **bwd}.items() if "reduce" not in k}
            if not (sharded_axis and name in SORTING):  # a sort needs its whole slice
                assert not gathers, f"gathers data: {gathers}"
            if not sharded_axis:
                assert sum(fwd.values()) + sum(bwd.values()) == 0, f"collectives: {fwd} {bwd}"
            if name in AXES:
                key = f"{name} along {'the sharded' if sharded_axis else 'an unsharded'} axis"
                checks.counts[key] = {"forward": fwd, "backward": bwd}

        return check

    for name in CATALOGUE:
        for kernel in kernels(name):
            for label in placements:
                for axis in (0, 1) if name in AXES else (1,):
                    test = f"dtensor {name} {kernel or '-'} {label} axis={axis}"
                    checks.run(test, op_check(name, kernel, label, axis))

    def variants() -> None:  # the other methods and orders, counted for docs/scaling.md
        calls: dict[str, Callable[[Any], Any]] = {
            "max(method='softmax')": lambda x: mol.max(x, axis=1, width=0.3, method="softmax"),
            "max(method='power')": lambda x: mol.max(x.abs(), axis=1, width=0.3, method="power"),
            "argmax(index=True)": lambda x: mol.argmax(x, axis=1, width=0.3, index=True),
            "logsumexp(straight_through=True)": lambda x: mol.logsumexp(
                x, axis=1, width=0.3, straight_through=True
            ),
            "max(method='softmax', straight_through=True)": lambda x: mol.max(
                x, axis=1, width=0.3, method="softmax", straight_through=True
            ),
            "norm(ord=2, straight_through=True)": lambda x: mol.norm(
                x, axis=1, width=0.3, straight_through=True
            ),
            "min(straight_through=True)": lambda x: mol.min(
                x, axis=1, width=0.3, straight_through=True
            ),
            "logmeanexp(straight_through=True)": lambda x: mol.logmeanexp(
                x, axis=1, width=0.3, straight_through=True
            ),
            "argmax(index=True, straight_through=True)": lambda x: mol.argmax(
                x, axis=1, width=0.3, index=True, straight_through=True
            ),
            "softmax(straight_through=True)": lambda x: mol.softmax(
                x, axis=1, width=0.3, straight_through=True
            ),
            "log_softmax(straight_through=True)": lambda x: mol.log_softmax(
                x, axis=1, width=0.3, straight_through=True
            ),
            **{
                f"norm(ord={o})": lambda x, o=o: mol.norm(x, ord=o, axis=1, width=0.3)
                for o in (0, 1, 2, float("inf"))
            },
            # sorts each slice: gathered along the sharded axis (docs/scaling.md says why)
            "max(method='sparsemax')": lambda x: mol.max(x, axis=1, width=0.3, method="sparsemax"),
            "argmax(method='entmax15')": lambda x: mol.argmax(
                x, axis=1, width=0.3, method="entmax15"
            ),
            "topk values": lambda x: mol.topk(x, 3, axis=1, width=0.3).values,
        }
        for key, f in calls.items():
            x = distribute_tensor(small, mesh, [Shard(1)]).requires_grad_()
            x0 = small.clone().requires_grad_()
            with CommDebugMode() as forward:
                got = f(x)
            want = f(x0)
            close(got, want.detach())
            with CommDebugMode() as backward:
                (grad,) = torch.autograd.grad(got.sum(), x)
            close(grad, torch.autograd.grad(want.sum(), x0)[0])
            fwd, bwd = _counts(forward), _counts(backward)
            checks.counts[f"{key} along the sharded axis"] = {"forward": fwd, "backward": bwd}

    checks.run("other reductions along the sharded axis", variants)

    def compiled() -> None:  # torch.compile(fullgraph=True) of DTensor ops
        cases = {
            "relu": (lambda v: mol.relu(v, width=0.3), [Shard(1)]),
            "logsumexp along an unsharded axis": (
                lambda v: mol.logsumexp(v, axis=1, width=0.3),
                [Shard(0)],
            ),
        }
        for label, (f, layout) in cases.items():
            torch._dynamo.reset()
            x = distribute_tensor(small, mesh, layout).requires_grad_()
            x0 = small.clone().requires_grad_()
            got, want = torch.compile(f, fullgraph=True)(x), f(x0)
            close(got, want.detach())
            close(torch.autograd.grad(got.sum(), x)[0], torch.autograd.grad(want.sum(), x0)[0])
            assert got.placements == (layout[0] if label == "relu" else Shard(0),), label
        # along the sharded axis: the shards' partials combined inside the compiled graph
        along: dict[str, Callable[[Any], Any]] = {
            "logsumexp": lambda v: mol.logsumexp(v, axis=0, width=0.3),
            "logmeanexp": lambda v: mol.logmeanexp(v, axis=0, width=0.3),
            "max(method='softmax')": lambda v: mol.max(v, axis=0, width=0.3, method="softmax"),
            "min(straight_through=True)": lambda v: mol.min(
                v, axis=0, width=0.3, straight_through=True
            ),
            "norm": lambda v: mol.norm(v, axis=0, width=0.3),
            "softmax": lambda v: mol.softmax(v, axis=0, width=0.3),
            "softmax(straight_through=True)": lambda v: mol.softmax(
                v, axis=0, width=0.3, straight_through=True
            ),
            "argmax(index=True)": lambda v: mol.argmax(v, axis=0, width=0.3, index=True),
            "all": lambda v: mol.all(torch.sigmoid(v), axis=0),
        }
        for label, f in along.items():
            torch._dynamo.reset()
            x = distribute_tensor(small, mesh, [Shard(0)]).requires_grad_()
            x0 = small.clone().requires_grad_()
            got, want = torch.compile(f, fullgraph=True)(x), f(x0)
            close(got, want.detach())
            weights = torch.linspace(-1.0, 2.0, want.numel(), dtype=want.dtype)
            weights = weights.reshape(want.shape)
            v = distribute_tensor(weights, mesh, got.placements)
            grad = torch.autograd.grad((got * v).sum(), x)[0]
            close(grad, torch.autograd.grad((want * weights).sum(), x0)[0])
            assert grad.placements == (Shard(0),), (label, grad.placements)

    checks.run("torch.compile of DTensor ops", compiled)

    # over 4 MiB: the CPU block loop's size (elementwise ops, and rows of reductions)
    big = torch.randn(*BIG) * 3

    def big_check(label: str) -> None:
        for name, op in CATALOGUE.items():
            if name in SORTING:
                continue  # no block loop; checked on small tensors (a slice of 131200: slow)
            for kernel in kernels(name):
                knobs: dict[str, Any] = {"width": 0.1}
                if kernel:
                    knobs["kernel"] = kernel
                if name in AXES:
                    knobs["axis"] = -1
                if name in REDUCTIONS and not op.module:
                    continue  # argmin is argmax of -x
                values = inputs_of(name, big)
                want = call(name, values, **knobs)
                got = call(
                    name, [distribute_tensor(v, mesh, placements[label]) for v in values], **knobs
                )
                close(got, want, rtol=1.3e-6, atol=1e-5)

    for label in ("Shard(0)", "Shard(1)"):
        checks.run(f"dtensor over 4 MiB {label}", lambda label=label: big_check(label))

    # the special cases that mixed plain tensors with DTensors
    def special() -> None:
        for label, p in placements.items():
            x = distribute_tensor(small, mesh, p)
            close(
                mol.argmax(x, axis=1, width=0.3, index=True),
                mol.argmax(small, axis=1, width=0.3, index=True),
            )
            g = mol.smooth(torch.floor, width=0.3)
            close(g(x), g(small))
            w = torch.linspace(0.2, 0.9, 8, dtype=torch.float64).reshape(1, 8)
            close(mol.relu(x, width=w), mol.relu(small, width=w))
            wd = distribute_tensor(w, mesh, [Replicate()])
            close(mol.floor(x, width=0.3), mol.floor(small, width=0.3))
            close(
                mol.gelu(x, width=wd, kernel="gaussian"),
                mol.gelu(small, width=w, kernel="gaussian"),
            )
            close(
                mol.logsumexp(x, axis=1, width=wd[:, :1]),
                mol.logsumexp(small, axis=1, width=w[:, :1]),
            )
            assert label  # every placement ran

    checks.run("argmax(index=True), smooth(torch.floor), tensor widths", special)

    # modules with DTensor inputs and learnable widths replicated over the mesh
    def modules() -> None:
        makers: list[Callable[[], Any]] = [
            lambda: mnn.SmoothReLU(learnable_width=True),
            lambda: mnn.SmoothReLU(learnable_width=True, per_channel=8, dim=1),
            lambda: mnn.SAU(),
            lambda: mnn.SmoothFloor(width=0.3),
            lambda: mnn.SmoothQuantize(0.25, width=0.2),
            lambda: mnn.SmoothSoftmax(dim=1, learnable_width=True),
            lambda: mnn.SmoothLogSumExp(dim=1, learnable_width=True),
            lambda: mnn.SmoothNorm(dim=1, learnable_width=True),
        ]
        for make in makers:
            for label, p in placements.items():
                reference, module = make().double(), make().double()
                distribute_module(module, mesh)  # parameters and buffers replicated
                x = distribute_tensor(small, mesh, p).requires_grad_()
                x0 = small.clone().requires_grad_()
                out, want = module(x), reference(x0)
                close(out, want)
                out.sum().backward()
                want.sum().backward()
                close(x.grad, x0.grad)
                for (name, param), ref in zip(module.named_parameters(), reference.parameters()):
                    try:
                        close(param.grad, ref.grad)
                    except AssertionError as e:
                        raise AssertionError(f"{type(module).__name__} {name} {label}") from e

    checks.run("nn modules on DTensors, replicated learnable widths", modules)

    def model(seed: int) -> Any:
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Linear(6, 8),
            mnn.SmoothReLU(learnable_width=True, per_channel=8, dim=-1),
            mnn.SAU(),
            torch.nn.Linear(8, 8),
            mnn.SmoothGELU(kernel="gaussian", learnable_width=True),
            torch.nn.Linear(8, 1),
        ).double()

    torch.manual_seed(1)
    batch = torch.randn(8, 6, dtype=torch.float64)
    target = torch.randn(8, 1, dtype=torch.float64)
    mine = slice(4 * rank, 4 * rank + 4)

    def reference_training(steps: int) -> Any:
        net = model(2)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        for _ in range(steps):
            opt.zero_grad()
            ((net(batch) - target) ** 2).mean().backward()
            opt.step()
        return net

    def ddp() -> None:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model(2))
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        for _ in range(3):
            opt.zero_grad()
            ((net(batch[mine]) - target[mine]) ** 2).mean().backward()
            opt.step()
        for got, want in zip(net.module.parameters(), reference_training(3).parameters()):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)

    checks.run("DDP", ddp)

    def fsdp2() -> None:
        from torch.distributed.fsdp import fully_shard

        net = model(2)
        for layer in net:
            if any(True for _ in layer.parameters()):
                fully_shard(layer, mesh=mesh)
        fully_shard(net, mesh=mesh)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        for _ in range(3):
            opt.zero_grad()
            ((net(batch[mine]) - target[mine]) ** 2).mean().backward()
            opt.step()
        for got, want in zip(net.parameters(), reference_training(3).parameters()):
            close(got, want)

    checks.run("FSDP2 fully_shard", fsdp2)

    def tensor_parallel() -> None:
        from torch.distributed.tensor.parallel import (
            ColwiseParallel,
            RowwiseParallel,
            parallelize_module,
        )

        net = model(2)
        # the activations between the two sharded layers see a DTensor sharded over the
        # features; their widths (one per feature, SAU's slope) are replicated parameters
        plan = {
            "0": ColwiseParallel(use_local_output=False),
            "3": RowwiseParallel(input_layouts=Shard(-1)),
        }
        parallelize_module(net, mesh, plan)
        for index in (1, 2):
            distribute_module(net[index], mesh)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        x = distribute_tensor(batch, mesh, [Replicate()])
        for _ in range(3):
            opt.zero_grad()
            out = net(x)
            out = out.full_tensor() if isinstance(out, DTensor) else out
            ((out - target) ** 2).mean().backward()
            opt.step()
        for got, want in zip(net.parameters(), reference_training(3).parameters()):
            got = got.full_tensor() if isinstance(got, DTensor) else got
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)

    checks.run("tensor parallel", tensor_parallel)


def main() -> None:
    import torch.distributed as dist
    import torch.multiprocessing as mp

    out_dir = sys.argv[1]
    # the rendezvous store listens on a port the system picks and keeps it while the
    # ranks run: no window in which another process could take a port found free
    # (binding port 0, closing it and handing its number over had one)
    store = dist.TCPStore("127.0.0.1", 0, WORLD, is_master=True, wait_for_workers=False)
    mp.spawn(_rank_main, args=(out_dir, store.port), nprocs=WORLD)
    del store


if __name__ == "__main__":
    main()
