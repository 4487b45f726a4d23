"""MkDocs hook: render the docstrings' reStructuredText math with MathJax.

The docstrings follow numpydoc (``:math:`...``` and ``.. math::``), which is what
``help()`` and Sphinx users read; on this site they become MathJax delimiters.
"""

import re

_INLINE = re.compile(r":math:<code>(.*?)</code>", re.S)
_DISPLAY = re.compile(r"\.\. math::\s*(.*?)(?=</p>)", re.S)


def on_page_content(html: str, **kwargs: object) -> str:
    html = _INLINE.sub(lambda m: rf"<span class='arithmatex'>\({m.group(1)}\)</span>", html)
    return _DISPLAY.sub(lambda m: rf"<span class='arithmatex'>\[{m.group(1)}\]</span>", html)
