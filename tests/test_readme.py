"""The README's example runs as written."""

import pathlib
import re


def test_readme_examples_run():
    text = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:
        if block.lstrip().startswith("op(x, /"):  # the signature, not code
            continue
        exec(compile(block, "README.md", "exec"), namespace)
    assert "mol" in namespace
