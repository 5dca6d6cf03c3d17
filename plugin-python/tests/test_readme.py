"""The README's Python example, run as written."""

import os
import re

from conftest import REPO


def test_the_readme_example_runs(tmp_path, capsys):
    readme = (REPO / "README.md").read_text()
    block = re.search(
        r"<!-- python-example:start -->\n```python\n(.*?)```\n<!-- python-example:end -->",
        readme,
        re.S,
    )
    assert block, "README.md has no python-example block"
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(block.group(1), "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "'videos': 16" in out and "-->" in out
