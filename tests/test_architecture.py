"""The layering of the package, read from the source (function-level imports included).

Imports only go down: ground -> kernels -> engine -> adapters -> catalogue -> dispatcher
-> public ops -> the package -> consumers. Modules of one layer may import each other
as long as no cycle forms. Frameworks (torch, jax, matplotlib) are imported only by the
adapters, the ground's backend lookup and the consumers that are about them.
"""

from __future__ import annotations

import ast
import pathlib

import mollifier as mol
from mollifier._catalogue import CATALOGUE, referenced

PACKAGE = pathlib.Path(mol.__file__).parent

LAYERS: list[tuple[str, set[str]]] = [
    ("ground", {"_backend", "_params", "_polynomials", "_reference"}),
    ("kernels", {"_kernels"}),
    ("engine", {"_engine"}),
    ("adapters", {"_adapters"}),
    ("catalogue", {"_catalogue"}),
    ("dispatcher", {"_dispatch"}),
    (
        "ops",
        {"_elementwise", "_staircase", "_reductions", "_smooth", "_bounds", "_logic", "_sorting"},
    ),
    ("package", {"__init__"}),
    ("consumers", {"_check", "plot", "cli", "nn", "_bench", "__main__"}),
]
FRAMEWORKS = {"torch", "jax", "matplotlib"}
# where a framework may be imported: the adapters, the backend lookup (it builds each
# framework's namespace once an array of it arrives) and the consumers about them
FRAMEWORK_IMPORTERS = {"_adapters", "_backend", "_params", "nn", "_bench", "plot"}


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        out[".".join(parts)] = path
    return out


def _top(module: str) -> str:
    return module.split(".")[0]


def _layer(module: str) -> int:
    top = _top(module)
    for i, (_, members) in enumerate(LAYERS):
        if top in members:
            return i
    raise AssertionError(f"module {module} is in no layer; add it to LAYERS")


def _imports(module: str, path: pathlib.Path) -> tuple[set[str], set[str]]:
    """``(package modules, external top-level packages)`` imported anywhere in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package_parts = module.split(".")[:-1] if not path.name == "__init__.py" else module.split(".")
    if module == "__init__":
        package_parts = []
    internal, external = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("mollifier"):
                    internal.add(alias.name.removeprefix("mollifier").lstrip(".") or "__init__")
                else:
                    external.add(alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if (node.module or "").startswith("mollifier"):
                    base = node.module.removeprefix("mollifier").lstrip(".")
                    internal.add(base or "__init__")
                else:
                    external.add((node.module or "").split(".")[0])
                continue
            base_parts = package_parts[: len(package_parts) - (node.level - 1)]
            if node.module:
                internal.add(".".join([*base_parts, *node.module.split(".")]))
            else:  # from . import a, b
                for alias in node.names:
                    internal.add(".".join([*base_parts, alias.name]))
    return {m for m in internal if m}, external


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    names = set(modules)
    graph = {}
    for module, path in modules.items():
        internal, _ = _imports(module, path)
        # a module or the package it names (``from ._engine import lse``)
        graph[module] = {
            target
            for target in internal
            if target in names or f"{target}.__init__" in names or target == "__init__"
        } - {module}
    return graph


def test_every_module_is_in_a_layer_and_imports_only_go_down():
    for module, targets in _graph().items():
        for target in targets:
            assert _layer(target) <= _layer(module), (
                f"{module} ({LAYERS[_layer(module)][0]}) imports {target} "
                f"({LAYERS[_layer(target)][0]})"
            )


def test_no_import_cycle_counting_function_level_imports():
    graph = _graph()

    def resolve(target: str) -> str:
        return target if target in graph else f"{target}.__init__"

    state: dict[str, int] = {}

    def visit(module: str, stack: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            target = resolve(target)
            if target not in graph:
                continue
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target] if target in stack else stack
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target, [*stack, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_frameworks_are_imported_only_where_they_belong():
    for module, path in _modules().items():
        _, external = _imports(module, path)
        if _top(module) in FRAMEWORK_IMPORTERS:
            continue
        assert not (external & FRAMEWORKS), f"{module} imports {external & FRAMEWORKS}"


def test_no_kernel_identity_test_outside_the_kernels_module():
    """Kernel facts are kernel data: no ``isinstance(..., Cauchy)`` or kernel-name test."""
    kernel_classes = {"Cauchy", "Gaussian", "Logistic", "Laplace", "PolynomialKernel"}
    names = set(mol.kernels)
    for module, path in _modules().items():
        if module in {"_kernels", "_reference"}:  # the kernels, and the independent oracle
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance":
                classes = ast.unparse(node.args[1]) if len(node.args) > 1 else ""
                assert not any(c in classes for c in kernel_classes), (module, classes)
            if isinstance(node, ast.Compare):
                text = ast.unparse(node)
                assert not any(f"'{n}'" in text or f'"{n}"' in text for n in names), (
                    module,
                    text,
                )


def test_the_catalogue_covers_the_public_api():
    """Every public op is one catalogue entry; check, plot and nn enumerate it."""
    import mollifier.nn as mnn

    functions = {n for n in mol.__all__ if callable(getattr(mol, n))}
    # smooth and the Fenchel-Young loss take the user's function: numerical, no closed form
    not_ops = {"AccuracyWarning", "Kernel", "Piecewise", "error_bound", "get_kernel", "smooth",
               "fenchel_young_loss", "width_for"}  # fmt: skip
    entries = {op.smooth for op in CATALOGUE.values()}
    for name in functions - not_ops:
        assert getattr(mol, name) in entries, f"{name} has no catalogue entry"
    for op in CATALOGUE.values():
        if op.module:
            assert isinstance(getattr(mnn, op.module), type), op.name
    assert set(referenced()) <= set(CATALOGUE)
    assert "floor" in referenced() and "relu" in referenced()
