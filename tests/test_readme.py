"""Every ```python block in the README and docs/ runs."""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
BLOCKS = [(f.name, i, code) for f in FILES if f.exists()
          for i, code in enumerate(re.findall(r"```python\n(.*?)```", f.read_text(), re.S))]


def _have_fashion_mnist() -> bool:
    from taiji.datasets import FashionMNIST
    try:
        FashionMNIST(train=False)
    except Exception:
        return False
    return True


@pytest.mark.parametrize("name,index,code", BLOCKS, ids=[f"{n}-{i}" for n, i, _ in BLOCKS])
def test_code_block_runs(name, index, code, capsys):
    if "# needs: fashion-mnist" in code and not _have_fashion_mnist():
        pytest.skip("Fashion-MNIST is not installed here (apt-get install dataset-fashion-mnist "
                    "or FashionMNIST(download=True))")
    exec(compile(code, f"{name}[{index}]", "exec"), {"__name__": "__readme__"})


def test_there_are_blocks():
    assert len(BLOCKS) >= 3
