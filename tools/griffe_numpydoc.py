"""Griffe extension: numpydoc markup in the docstrings, rewritten for this site.

The docstrings follow numpydoc, which is what ``help()`` and Sphinx users read.
Before mkdocstrings renders them, this extension rewrites

* ``:math:`...``` to ``\\(...\\)`` and ``.. math::`` blocks to ``\\[...\\]``, which
  ``pymdownx.arithmatex`` keeps intact (``tools/mkdocs_hooks.py`` then turns
  them into MathML);
* ``:func:``, ``:class:``, ``:meth:``, ``:attr:``, ``:data:``, ``:mod:`` and
  ``:obj:`` roles to autorefs links ``[`name`][mollifier.name]``, so that
  ``mkdocs build --strict`` fails on a reference that points nowhere.
"""

from __future__ import annotations

import ast
import re
import textwrap
from typing import Any

import griffe

_INLINE_MATH = re.compile(r":math:`([^`]*)`")
_ROLE = re.compile(r":(?:py:)?(func|class|meth|attr|data|mod|obj):`(~?)([\w.]+)(\(\))?`")
_PACKAGE = "mollifier"


def _display_math(text: str) -> str:
    """``.. math:: first line`` plus its more indented continuation lines."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if not stripped.startswith(".. math::"):
            out.append(line)
            i += 1
            continue
        indent = len(line) - len(stripped)
        body = [stripped[len(".. math::") :].strip()]
        i += 1
        while i < len(lines) and (
            (not lines[i].strip() and i + 1 < len(lines) and _indent(lines[i + 1]) > indent)
            or (lines[i].strip() and _indent(lines[i]) > indent)
        ):
            body.append(lines[i].strip())
            i += 1
        pad = " " * indent
        latex = " ".join(part for part in body if part)
        out.extend(["", pad + r"\[", pad + latex, pad + r"\]", ""])
    return "\n".join(out)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _target(role: str, name: str, obj: griffe.Object) -> str:
    """The autorefs identifier a role's name points to."""
    if name.startswith(_PACKAGE + ".") or name == _PACKAGE:
        return name
    module = obj.module
    head = name.split(".", 1)[0]
    if "._" not in module.path and head in module.members and not module.members[head].is_alias:
        return f"{module.path}.{name}"  # a public submodule's own member (mollifier.nn.SAU)
    if role in {"meth", "attr"} and "." not in name:
        cls = obj if obj.is_class else obj.parent
        while cls is not None and not cls.is_class:
            cls = cls.parent
        if cls is not None:
            return f"{_PACKAGE}.{cls.name}.{name}"
    return f"{_PACKAGE}.{name}"


def rewrite(text: str, obj: griffe.Object) -> str:
    """The docstring ``text`` of ``obj`` with its numpydoc markup rewritten."""
    text = _display_math(text)
    text = _INLINE_MATH.sub(lambda m: rf"\({m.group(1)}\)", text)

    def link(m: re.Match[str]) -> str:
        role, short, name, call = m.groups()
        shown = name.rsplit(".", 1)[-1] if short else name
        if role in {"func", "meth"} or call:
            shown += "()"
        return f"[`{shown}`][{_target(role, name, obj)}]"

    return _ROLE.sub(link, text)


def _shared_parameters(obj: griffe.Object) -> str:
    """The module's ``_DOC_PARAMETERS``, which it substitutes for ``{params}`` at import."""
    shared = obj.module.members.get("_DOC_PARAMETERS")
    if not isinstance(shared, griffe.Attribute) or shared.value is None:
        raise ValueError(f"{obj.path}: docstring has {{params}} but no _DOC_PARAMETERS")
    return textwrap.dedent(ast.literal_eval(str(shared.value))).strip("\n")


class NumpydocMarkup(griffe.Extension):
    """Rewrite every loaded docstring (see the module docstring)."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None:
            return
        text = obj.docstring.value
        if "{params}" in text:
            text = text.replace("{params}", _shared_parameters(obj))
        obj.docstring.value = rewrite(text, obj)
