"""Every ```python block in the README and docs/ runs."""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
BLOCKS = [(f.name, i, code) for f in FILES if f.exists()
          for i, code in enumerate(re.findall(r"```python\n(.*?)```", f.read_text(), re.S))]


@pytest.mark.parametrize("name,index,code", BLOCKS, ids=[f"{n}-{i}" for n, i, _ in BLOCKS])
def test_code_block_runs(name, index, code, capsys):
    exec(compile(code, f"{name}[{index}]", "exec"), {"__name__": "__readme__"})


def test_there_are_blocks():
    assert len(BLOCKS) >= 3
