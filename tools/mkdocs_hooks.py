"""MkDocs hook: typeset the site's math as MathML at build time.

``pymdownx.arithmatex`` (generic mode) wraps the math of the Markdown pages, and
``tools/griffe_numpydoc.py`` rewrites the docstrings' numpydoc math into the same
form; this hook converts every wrapped formula to MathML with ``latex2mathml``, so
the built site reads as typeset math with no script and no network. A formula that
does not convert fails the build.
"""

from __future__ import annotations

import html
import re

from latex2mathml.converter import convert

_MATH = re.compile(
    r"<(?P<tag>span|div) class=(?P<q>['\"])arithmatex(?P=q)>"
    r"(?:\\\((?P<inline>.*?)\\\)|\\\[(?P<block>.*?)\\\])</(?P=tag)>",
    re.S,
)


_OPERATORNAME = re.compile(r"\\operatorname\{")


def to_mathml(latex: str, *, display: bool) -> str:
    """MathML for one LaTeX formula."""
    # latex2mathml drops \operatorname (an empty <mo/>, italic letters); \mathrm reads the same
    latex = _OPERATORNAME.sub(r"\\mathrm{", latex)
    try:
        return convert(latex.strip(), display="block" if display else "inline")
    except Exception as exc:  # latex2mathml raises assorted exception types
        raise ValueError(f"cannot convert to MathML: {latex!r} ({exc})") from exc


def _replace(m: re.Match[str]) -> str:
    display = m.group("block") is not None
    latex = html.unescape(m.group("block") if display else m.group("inline"))
    tag = m.group("tag")
    return f'<{tag} class="arithmatex">{to_mathml(latex, display=display)}</{tag}>'


def on_page_content(html_text: str, **kwargs: object) -> str:
    return _MATH.sub(_replace, html_text)
