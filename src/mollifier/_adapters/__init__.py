"""Framework adapters: they are handed engine formulas and give them custom derivatives.

* ``torch``: autograd nodes that save one tensor (and fused native forms);
* ``jax``: ``jax.custom_jvp`` rules built from the same formulas.

Imported only by :mod:`mollifier._dispatch`, and only once an array of the framework
has arrived.
"""
