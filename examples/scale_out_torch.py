"""DDP, FSDP2 and a DTensor softmax with mollifier modules on two CPU processes (gloo).

Run: ``python examples/scale_out_torch.py``. Each rank trains on its own data; the
smooth modules (a learnable width, SAU's learnable slope and width) need nothing
special: DDP averages their gradients, FSDP2 shards them like any parameter.
"""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import Shard, distribute_tensor
from torch.nn.parallel import DistributedDataParallel

import mollifier as mol
from mollifier import nn as mnn


def model() -> torch.nn.Module:
    torch.manual_seed(0)  # the same initial weights on every rank
    return torch.nn.Sequential(
        torch.nn.Linear(4, 16),
        mnn.SAU(),
        torch.nn.Linear(16, 16),
        mnn.SmoothReLU(learnable_width=True),
        torch.nn.Linear(16, 1),
    )


def train(rank: int, port: int) -> None:
    # the parent's store (below) already listens on the port: nothing can take it
    store = dist.TCPStore("127.0.0.1", port, 2, is_master=False)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=2)
    torch.manual_seed(rank)  # each rank its own batch
    x = torch.randn(64, 4)
    y = x.sum(dim=1, keepdim=True).relu()
    for wrapping in ("DDP", "FSDP2"):
        net = model()
        if wrapping == "DDP":
            net = DistributedDataParallel(net)
        else:
            for layer in net:
                if any(True for _ in layer.parameters()):
                    fully_shard(layer)
            fully_shard(net)
        optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
        for _ in range(50):
            optimizer.zero_grad()
            loss = ((net(x) - y) ** 2).mean()
            loss.backward()
            optimizer.step()
        if rank == 0:
            print(f"{wrapping}: loss {loss.item():.4f}")
    # a DTensor sharded along the softmax's axis: each rank keeps its half, two
    # all-reduces forward, one backward, no gather
    mesh = init_device_mesh("cpu", (2,))
    logits = distribute_tensor(torch.randn(4, 10), mesh, [Shard(1)]).requires_grad_()
    p = mol.softmax(logits, axis=1, width=0.5)
    (p * p).sum().backward()
    assert p.placements == logits.grad.placements == (Shard(1),)
    if rank == 0:
        print("DTensor softmax:", tuple(p.to_local().shape), "of", tuple(p.shape), "per rank")
    dist.destroy_process_group()


if __name__ == "__main__":
    # a rendezvous store on a port the system picks, held until the ranks are done
    # (picking a free port and binding it later races with other programs)
    store = dist.TCPStore("127.0.0.1", 0, 2, is_master=True, wait_for_workers=False)
    mp.spawn(train, args=(store.port,), nprocs=2)
