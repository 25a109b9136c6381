"""Notebook -> script export: code/pretrain.py is generated from the `#| export` cells."""

import ast
import shutil
import subprocess
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import export  # noqa: E402


def test_committed_script_matches_the_notebooks():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "export.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_check_fails_when_a_notebook_changes(tmp_path):
    chapters = tmp_path / "chapters"
    shutil.copytree(ROOT / "chapters", chapters, ignore=shutil.ignore_patterns("runs", "solutions"))
    before = export.render(chapters)
    nb_path = sorted(chapters.glob("[0-9][0-9]_*.ipynb"))[-1]
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells.append(new_code_cell("#| export\nimport math\n\nANSWER = math.floor(42.5)"))
    nbformat.write(nb, nb_path)
    after = export.render(chapters)
    assert after != before
    assert "ANSWER = math.floor(42.5)" in after and "import math" in after


def test_render_orders_cells_hoists_imports_and_marks_provenance(tmp_path):
    cells = {
        "02_b.ipynb": ['#| export\nimport os\n\nB = os.sep', "print('demo cell, not exported')"],
        "01_a.ipynb": ['#| export\n"""Module docstring."""\nimport os\n\n\ndef main():\n    pass'],
    }
    for name, sources in cells.items():
        nbformat.write(new_notebook(cells=[new_code_cell(s) for s in sources]), tmp_path / name)
    text = export.render(tmp_path)
    tree = ast.parse(text)
    assert ast.get_docstring(tree) == "Module docstring."
    assert text.count("import os") == 1
    assert text.index("01_a.ipynb, cell 0") < text.index("02_b.ipynb, cell 0")
    assert "demo cell" not in text
    assert text.rstrip().endswith("main()")
    assert text.startswith(export.HEADER)


def test_exported_cells_are_definitions_only():
    """No magics, prints or top-level work in exported cells: only defs, classes, constants."""
    allowed = (ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign, ast.Import,
               ast.ImportFrom, ast.Expr)
    for name, index, source in export.exported_cells():
        tree = ast.parse(source)
        for node in tree.body:
            assert isinstance(node, allowed), f"{name} cell {index}: {ast.dump(node)[:60]}"
            if isinstance(node, ast.Expr):
                assert isinstance(node.value, ast.Constant), f"{name} cell {index}: top-level call"


def test_classroom_cells_go_to_their_own_module(tmp_path):
    cells = ["#| export\nA = 1",
             '#| export classroom\n"""Explorers."""\nimport math\n\nB = math.pi']
    nbformat.write(new_notebook(cells=[new_code_cell(s) for s in cells]), tmp_path / "01_a.ipynb")
    script, classroom = export.render(tmp_path), export.render(tmp_path, "classroom")
    assert "A = 1" in script and "B = math.pi" not in script and script.rstrip().endswith("main()")
    assert "B = math.pi" in classroom and "A = 1" not in classroom
    assert ast.get_docstring(ast.parse(classroom)) == "Explorers." and "main()" not in classroom
