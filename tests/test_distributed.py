"""mollifier scaled out: torch.distributed on two gloo processes on 127.0.0.1, and JAX
SPMD on 8 host devices.

One launch of tests/_distributed_worker.py (two ranks, about a minute on two cores)
runs every check; the tests below read its report. DTensor (Shard and Replicate, over
4 MiB, every op, values and gradients against the one-process computation, placements
kept, the collectives counted), DDP, FSDP2 (``fully_shard``) and tensor parallelism
(``parallelize_module``) training against one-process training on the whole batch.
tests/_jax_devices_worker.py, in a process started with 8 host devices, checks ``jax.jit``
of sharded arrays and ``jax.shard_map`` with ``axis_name=`` against one device and reads
the compiled HLO for collectives.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

WORKER = pathlib.Path(__file__).with_name("_distributed_worker.py")
JAX_WORKER = pathlib.Path(__file__).with_name("_jax_devices_worker.py")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("distributed")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    src = str(pathlib.Path(__file__).parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, str(WORKER), str(out)], env=env, capture_output=True, text=True,
        timeout=1200,  # a loaded 2-core machine (a CI run beside a fuzz run) took over 600 s
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["checks"].keys() == ranks[1]["checks"].keys()
    # the same collectives on both ranks
    assert ranks[0]["counts"] == ranks[1]["counts"], (ranks[0]["counts"], ranks[1]["counts"])
    return ranks[0]


def _failures(report: dict, prefix: str) -> dict:
    checks = {k: v for k, v in report["checks"].items() if k.startswith(prefix)}
    assert checks, f"no check starts with {prefix!r}"
    return {k: v[-1500:] for k, v in checks.items() if v != "ok"}


@pytest.mark.parametrize(
    "prefix",
    [
        "dtensor ",  # every op, kernel, placement and axis (small tensors)
        "dtensor over 4 MiB",  # the CPU block loop's sizes
        "argmax(index=True)",
        "nn modules on DTensors",
        "DDP",
        "FSDP2",
        "tensor parallel",
        "other reductions",
        "torch.compile of DTensor ops",
    ],
)
def test_distributed_check(report, prefix):
    assert not _failures(report, prefix)


def test_every_op_ran_on_every_placement(report):
    from mollifier._catalogue import CATALOGUE

    names = {k.split()[1] for k in report["checks"] if k.startswith("dtensor ") and "MiB" not in k}
    assert names == set(CATALOGUE)  # a new op is checked here too
    placements = {
        k.split()[3] for k in report["checks"] if k.startswith("dtensor ") and "MiB" not in k
    }
    assert placements == {"Shard(0)", "Shard(1)", "Replicate"}


def test_collectives_of_reductions(report):
    from _distributed_worker import SORTING

    counts = report["counts"]
    sorting = {"max(method='sparsemax')", "argmax(method='entmax15')"}
    for key, ways in counts.items():
        total = sum(sum(way.values()) for way in ways.values())
        if "unsharded" in key:
            assert total == 0, (key, ways)  # no communication at all
        elif key.removesuffix(" along the sharded axis") in sorting:
            # the sparse methods sort each slice: one gather of it, nothing backward
            assert ways == {"forward": {"all_gather_into_tensor": 1}, "backward": {}}, (key, ways)
        elif key.split()[0] in SORTING:  # a gather of the slice (docs/scaling.md: why)
            assert ways["forward"] == {"all_gather_into_tensor": 1}, (key, ways)
            assert set(ways["backward"]) <= {"all_gather_into_tensor"}, (key, ways)
        else:  # one all-reduce for the max and one for the sums, each way
            assert set(ways["forward"]) | set(ways["backward"]) <= {"all_reduce"}, (key, ways)
            assert 1 <= ways["forward"]["all_reduce"] <= 2, (key, ways)
            assert ways["backward"].get("all_reduce", 0) <= 2, (key, ways)
    assert counts["softmax along the sharded axis"]["backward"] == {"all_reduce": 1}
    # a product all-reduce, not a gather; any adds the sum of log1p(-p) that keeps small p
    assert counts["all along the sharded axis"]["forward"] == {"all_reduce": 1}
    assert counts["any along the sharded axis"]["forward"] == {"all_reduce": 2}
    for name in ("logsumexp", "min", "logmeanexp"):
        assert counts[f"{name}(straight_through=True) along the sharded axis"] == {
            "forward": {"all_reduce": 1},  # the hard value alone: no smooth value computed
            "backward": {"all_reduce": 2},
        }, name
    # the hard one-hot or index by the DTensor's own ops (the max; the count of ties, with
    # their positions), the smooth node's derivative (the weights recomputed in backward)
    for name in ("argmax(index=True, ", "softmax(", "log_softmax("):
        assert counts[f"{name}straight_through=True) along the sharded axis"] == {
            "forward": {"all_reduce": 2},
            "backward": {"all_reduce": 2},
        }, name


@pytest.fixture(scope="module")
def jax_report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("jax-devices") / "report.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    src = str(pathlib.Path(__file__).parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, str(JAX_WORKER), str(out)], env=env, capture_output=True, text=True,
        timeout=1200,  # a loaded 2-core machine (a CI run beside a fuzz run) took over 600 s
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize(
    "name",
    [
        "jit elementwise",  # every elementwise op: the input's layout, no collective
        "jit reductions axis=0",  # along the axis split over mesh axis "a"
        "jit reductions axis=1",  # along the axis split over mesh axis "b"
        "jit sorting and soft booleans along an unsharded axis",  # no collective
        "jit sorting and soft booleans along a sharded axis",
        *(
            f"shard_map {label}"
            for label in (
                "logsumexp", "logsumexp tol", "softmax", "max softmax", "max power", "min",
                "argmax index", "argmin", "norm 2", "norm inf straight-through",
                "norm 1 straight-through", "log_softmax", "logmeanexp tol", "logsumexp b",
            )
        ),
    ],
)  # fmt: skip
def test_jax_on_8_devices(jax_report, name):
    result = jax_report["checks"][name]
    assert result == "ok", result[-1500:]


def test_jax_collectives_of_reductions(jax_report):
    counts = jax_report["collectives"]
    from _jax_devices_worker import REDUCTIONS

    reductions = {k: v for k, v in counts.items() if not k.endswith("sharded")}
    assert len(reductions) == 2 * len(REDUCTIONS)  # every reduction x 2 sharded axes
    for key, found in reductions.items():
        assert set(found) == {"all-reduce"}, (key, found)  # no gather, permute or scatter
        assert found["all-reduce"] <= 2, (key, found)
    for name in ("all", "any"):  # a reduction, not a gather
        assert set(counts[f"{name} axis=1 sharded"]) == {"all-reduce"}, counts


def test_axis_name_is_for_jax_arrays():
    import numpy as np
    import torch

    import mollifier as mol

    for x in (np.ones(3), torch.ones(3)):
        with pytest.raises(TypeError, match="axis_name= names a mesh axis of jax.shard_map"):
            mol.logsumexp(x, width=1.0, axis_name="b")
    import jax.numpy as jnp

    with pytest.raises(TypeError, match="axis_name must be a mesh axis name"):
        mol.softmax(jnp.ones(3), width=1.0, axis_name=["b"])
    with pytest.raises(ValueError, match="it sorts each slice"):  # no partials to combine
        mol.max(jnp.ones(3), width=1.0, method="sparsemax", axis_name="b")
    with pytest.raises(NameError, match="unbound axis name"):  # outside shard_map: JAX's
        mol.norm(jnp.ones(3), width=1.0, axis_name="b")


EXAMPLES = pathlib.Path(__file__).parents[1] / "examples"


@pytest.mark.parametrize("name", ["scale_out_torch.py", "scale_out_jax.py"])
def test_scaling_examples_run_and_are_the_docs(name):
    # docs/scaling.md shows the examples verbatim; they run as shown
    page = (pathlib.Path(__file__).parents[1] / "docs" / "scaling.md").read_text()
    code = (EXAMPLES / name).read_text()
    assert f"```python\n{code}```" in page
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    src = str(pathlib.Path(__file__).parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert "loss" in done.stdout or "smooth max per row" in done.stdout
