"""The code shown in ``docs/`` runs: ``>>>`` examples as doctests (their printed
output is checked) and ``.. code-block:: python`` blocks as scripts.

``docs/own_model.rst`` is left out here: ``tests/test_own_model.py`` runs its
blocks and tests the classes they define.
"""

import doctest
import re
import textwrap
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(p for p in DOCS.glob("*.rst") if p.name != "own_model.rst")
_FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


def _python_blocks(text):
    """The bodies of the ``.. code-block:: python`` directives of an rst page."""
    blocks = []
    for match in re.finditer(r"^\.\. code-block:: python\n((?:[ \t]*\n|[ \t]+.*\n)+)", text,
                             flags=re.M):
        body = "\n".join(line for line in match.group(1).splitlines()
                         if not line.strip().startswith(":"))  # directive options
        blocks.append(textwrap.dedent(body))
    return blocks


BLOCKS = [(p.name, i, b) for p in PAGES for i, b in enumerate(_python_blocks(p.read_text()))]


def test_the_docs_show_python_code():
    assert BLOCKS, "no python code block found under docs/"
    assert any(">>>" in p.read_text() for p in PAGES)


@pytest.mark.parametrize("page", [p for p in PAGES if ">>>" in p.read_text()], ids=lambda p: p.name)
def test_doctest_examples_of_a_page(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = doctest.testfile(str(page), module_relative=False, optionflags=_FLAGS, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} doctest example(s) of docs/{page.name} failed"


@pytest.mark.parametrize("name, index, code", BLOCKS, ids=[f"{n}[{i}]" for n, i, _ in BLOCKS])
def test_python_block_runs(name, index, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"docs/{name}[block {index}]", "exec"), {"__name__": "__docs__"})
