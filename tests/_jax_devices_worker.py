"""mollifier under JAX SPMD on 8 host devices (run by tests/test_distributed.py).

``python tests/_jax_devices_worker.py OUT.json`` with
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (JAX reads it at start-up, hence
a process of its own). Each check compares the sharded result (``jax.jit`` of arrays
laid out on a 4 x 2 mesh, or ``jax.shard_map`` with ``axis_name=``) with the same
computation on one device and reads the compiled HLO for collectives. It writes
``{"checks": {name: "ok" or the traceback}, "collectives": {name: {op: count}}}``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

TWO_INPUTS = ("greater", "less", "equal", "maximum", "minimum")
REDUCTIONS = (
    "logsumexp", "softmax", "max", "min", "argmax", "argmin", "norm", "log_softmax", "logmeanexp"
)  # fmt: skip
COLLECTIVES = ("all-gather", "all-reduce", "all-to-all", "collective-permute", "reduce-scatter")


def main() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    import mollifier as mol
    from _distributed_worker import SLICES, slice_call
    from mollifier._catalogue import CATALOGUE

    assert len(jax.devices()) == 8, jax.devices()
    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("a", "b"))
    spec = NamedSharding(mesh, P("a", "b"))
    rng = np.random.default_rng(0)
    whole = np.clip(rng.standard_normal((16, 24)) * 2, -4, 4)
    x1 = jnp.asarray(whole)  # one device
    xs = jax.device_put(whole, spec)  # 4 x 2 shards
    checks: dict[str, str] = {}
    collectives: dict[str, dict[str, int]] = {}

    def run(name: str, check: Callable[[], None]) -> None:
        start = time.perf_counter()
        try:
            check()
            checks[name] = "ok"
        except Exception:
            checks[name] = traceback.format_exc()
        if os.environ.get("MOLLIFIER_WORKER_TRACE"):
            print(f"{time.perf_counter() - start:6.1f} s  {name}", file=sys.stderr, flush=True)

    def hlo_collectives(f: Callable[..., Any], *args: Any) -> dict[str, int]:
        text = jax.jit(f).lower(*args).compile().as_text()
        return {c: n for c in COLLECTIVES if (n := len(re.findall(rf"\b{c}(-start)?\(", text)))}

    def close(got: Any, want: Any) -> None:
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-11, atol=1e-13)

    def inputs(name: str, x: Any) -> tuple[Any, ...]:
        if name in TWO_INPUTS:  # inputs laid out as x (a flip would move data between shards)
            return (x, 0.5 * x + 0.25)
        if name == "where":
            return (x, jnp.cos(x), -x)
        return (x,)

    def call(name: str, values: tuple[Any, ...], **knobs: Any) -> Any:
        op = CATALOGUE[name]
        if name in TWO_INPUTS or name == "where" or name in REDUCTIONS:
            return op.smooth(*values, **knobs)
        return op.example(values[0], **knobs)

    # one compiled function per group (compiling each op alone took a minute more)
    groups: dict[str, tuple[list[str], dict[str, Any]]] = {
        "elementwise": ([n for n in CATALOGUE if n not in REDUCTIONS and n not in SLICES], {}),
        **{f"reductions axis={a}": (list(REDUCTIONS), {"axis": a}) for a in (0, 1)},
    }
    for group, (names, knobs) in groups.items():

        def check(names: list[str] = names, knobs: dict[str, Any] = knobs) -> None:
            def f(x: Any) -> Any:
                return [call(n, inputs(n, x), width=0.3, **knobs) for n in names]

            def loss(x: Any) -> Any:
                return sum(jnp.sum(y * jnp.cos(y)) for y in f(x))

            for name, got, want in zip(names, jax.jit(f)(xs), f(x1)):
                try:
                    close(got, want)
                except AssertionError as e:
                    raise AssertionError(name) from e
                if not knobs:  # elementwise: the input's layout
                    assert got.sharding.is_equivalent_to(spec, 2), name
            close(jax.jit(jax.grad(loss))(xs), jax.grad(loss)(x1))
            found = hlo_collectives(f, xs)
            grads = hlo_collectives(jax.grad(loss), xs)
            assert "all-gather" not in found and "all-gather" not in grads, (found, grads)
            if not knobs:
                assert not found and not grads, (found, grads)
            for name in names if knobs else ():
                collectives[f"{name} axis={knobs['axis']}"] = hlo_collectives(
                    lambda x, name=name: call(name, (x,), width=0.3, **knobs), xs
                )

        run(f"jit {group}", check)

    # the sorting family, the soft booleans and isclose: along an axis that is not split
    # no collective; along a split one XLA gathers the slice for a sort (docs/scaling.md)
    for label, layout in (("unsharded", P("a", None)), ("sharded", P("a", "b"))):

        def slices_check(layout: Any = layout, label: str = label) -> None:
            xl = jax.device_put(whole, NamedSharding(mesh, layout))

            # along the split axis sort stands for the family (XLA gathers its slices)
            names = SLICES if label == "unsharded" else ("sort", "all", "any")

            def f(x: Any) -> Any:
                return [slice_call(n, x, 1, **({} if n == "logical_not" else {"width": 0.3}))
                        for n in names]  # fmt: skip

            def loss(x: Any) -> Any:
                return sum(jnp.sum(y * jnp.cos(y)) for y in f(x))

            # each compiled once, run and read (NumPy's values: eager JAX is slow here)
            values, grad = (jax.jit(g).lower(xl).compile() for g in (f, jax.grad(loss)))
            for got, want in zip(values(xl), f(whole)):
                close(got, want)
            close(grad(xl), jax.jit(jax.grad(loss))(x1))
            found = {c: n for c in COLLECTIVES for g in (values, grad)
                     if (n := len(re.findall(rf"\b{c}(-start)?\(", g.as_text())))}  # fmt: skip
            if label == "unsharded":
                assert not found, found
            else:
                for name in ("all", "any"):  # a reduction, not a gather
                    collectives[f"{name} axis=1 sharded"] = hlo_collectives(
                        lambda x, name=name: slice_call(name, x, 1, width=0.3), xl
                    )

        run(
            f"jit sorting and soft booleans along {'an' if label == 'unsharded' else 'a'} {label} axis",
            slices_check,
        )

    # inside shard_map: axis_name combines the shards' partial results
    def shard_map_check(label: str, f: Callable[..., Any], out: Any) -> None:
        def check() -> None:
            sharded = jax.jit(
                jax.shard_map(lambda x: f(x, "b"), mesh=mesh, in_specs=P("a", "b"), out_specs=out)
            )
            close(sharded(xs), f(x1, None))

            def loss(x: Any, name: Any) -> Any:
                return jnp.sum(jnp.sin(f(x, name)))

            sharded_grad = jax.jit(
                jax.shard_map(
                    jax.grad(lambda x: loss(x, "b")), mesh=mesh, in_specs=P("a", "b"),
                    out_specs=P("a", "b"),
                )
            )  # fmt: skip
            found = hlo_collectives(lambda x: sharded_grad(x), xs)
            assert "all-gather" not in found, found
            close(sharded_grad(xs), jax.grad(lambda x: loss(x, None))(x1))

        run(f"shard_map {label}", check)

    reduced = P("a")
    cases: dict[str, tuple[Callable[..., Any], Any]] = {
        "logsumexp": (lambda x, n: mol.logsumexp(x, axis=1, width=0.3, axis_name=n), reduced),
        "logsumexp tol": (lambda x, n: mol.logsumexp(x, axis=1, tol=0.1, axis_name=n), reduced),
        "softmax": (lambda x, n: mol.softmax(x, axis=1, width=0.3, axis_name=n), P("a", "b")),
        "max softmax": (
            lambda x, n: mol.max(x, axis=1, width=0.3, method="softmax", axis_name=n),
            reduced,
        ),
        "max power": (
            lambda x, n: mol.max(jnp.abs(x), axis=1, width=0.3, method="power", axis_name=n),
            reduced,
        ),
        "min": (lambda x, n: mol.min(x, axis=1, width=0.3, axis_name=n), reduced),
        "argmax index": (
            lambda x, n: mol.argmax(x, axis=1, width=0.3, index=True, axis_name=n),
            reduced,
        ),
        "argmin": (lambda x, n: mol.argmin(x, axis=1, width=0.3, axis_name=n), P("a", "b")),
        "norm 2": (lambda x, n: mol.norm(x, axis=1, width=0.3, axis_name=n), reduced),
        "norm inf straight-through": (
            lambda x, n: mol.norm(
                x, ord=np.inf, axis=1, width=0.3, straight_through=True, axis_name=n
            ),
            reduced,
        ),
        "norm 1 straight-through": (
            lambda x, n: mol.norm(x, ord=1, axis=1, width=0.3, straight_through=True, axis_name=n),
            reduced,
        ),
    }

    def signed(x: Any, n: Any) -> Any:  # weights of both signs: the sign combines too
        value, sign = mol.logsumexp(
            x, axis=1, b=jnp.cos(x), width=0.3, return_sign=True, axis_name=n
        )
        return value * sign

    cases.update({
        "log_softmax": (
            lambda x, n: mol.log_softmax(x, axis=1, width=0.3, axis_name=n), P("a", "b")
        ),
        "logmeanexp tol": (lambda x, n: mol.logmeanexp(x, axis=1, tol=0.1, axis_name=n), reduced),
        "logsumexp b": (signed, reduced),
    })  # fmt: skip
    for label, (f, out) in cases.items():
        shard_map_check(label, f, out)

    with open(sys.argv[1], "w") as stream:
        json.dump({"checks": checks, "collectives": collectives}, stream, indent=1)


if __name__ == "__main__":
    main()
