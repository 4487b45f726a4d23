"""mollifier on sharded JAX arrays: ``jax.jit`` of a sharded array, and ``shard_map``
with ``axis_name=``.

Run: ``XLA_FLAGS=--xla_force_host_platform_device_count=8 python examples/scale_out_jax.py``
(8 CPU devices; on accelerators the mesh is the real one).
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import mollifier as mol

mesh = jax.make_mesh((8,), ("d",))
x = jax.device_put(jnp.sin(jnp.arange(4 * 64.0)).reshape(4, 64), NamedSharding(mesh, P(None, "d")))
whole = np.asarray(x)  # the same data, unsharded

# jit: XLA keeps every elementwise op on its shard and all-reduces small partials
relu = jax.jit(lambda v: mol.relu(v, width=0.1))(x)
assert relu.sharding.is_equivalent_to(x.sharding, 2)
top = jax.jit(lambda v: mol.logsumexp(v, axis=1, width=0.1))(x)
np.testing.assert_allclose(top, mol.logsumexp(whole, axis=1, width=0.1), rtol=1e-6)


# shard_map: each device sees its (4, 8) block; axis_name combines the blocks
def block_max(v):
    return mol.logsumexp(v, axis=1, width=0.1, axis_name="d")


top_map = jax.jit(jax.shard_map(block_max, mesh=mesh, in_specs=P(None, "d"), out_specs=P()))(x)
np.testing.assert_allclose(top_map, top, rtol=1e-6)
print("smooth max per row:", np.round(np.asarray(top_map), 4))
