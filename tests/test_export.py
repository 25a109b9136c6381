"""Notebook -> code export: `#| export` cells make code/pretrain.py, `#| export <module>` cells
code/llm_pretrain/<module>.py."""

import ast
import shutil
import subprocess
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

import export  # tools/, on sys.path: `pythonpath` in pyproject.toml
from helpers import ROOT


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


def test_module_cells_go_to_their_module_with_all_and_the_script_ends_in_main(tmp_path):
    cells = ["#| export\nfrom llm_pretrain.data import B\n\n\ndef main():\n    print(B)",
             '#| export data\n"""Blocks."""\nimport math\n\nB = math.pi\n_HIDDEN = 1\n\n\n'
             'def pack():\n    pass',
             "#| export data\nclass Packer:\n    pass",
             "#| export classroom\nC = 3"]
    nbformat.write(new_notebook(cells=[new_code_cell(s) for s in cells]), tmp_path / "01_a.ipynb")
    assert export.targets(tmp_path) == ["pretrain", "classroom", "data"]
    assert [i for _, i, _ in export.exported_cells(tmp_path, "data")] == [1, 2]
    assert len(export.exported_cells(tmp_path)) == 4
    script, data = export.render(tmp_path, "pretrain"), export.render(tmp_path, "data")
    assert "B = math.pi" not in script and "from llm_pretrain.data import B" in script
    assert script.rstrip().endswith('if __name__ == "__main__":\n    main()')
    assert "B = math.pi" in data and "class Packer" in data and "def main" not in data
    assert "C = 3" not in data and "main()" not in data
    tree = ast.parse(data)
    assert ast.get_docstring(tree) == "Blocks."
    (names,) = [n.value for n in tree.body if isinstance(n, ast.Assign)
                and [t.id for t in n.targets] == ["__all__"]]
    assert ast.literal_eval(names) == ["B", "pack", "Packer"]  # public names, in cell order
    assert export.target_path("data") == ROOT / "code" / "llm_pretrain" / "data.py"
    assert export.target_path("pretrain") == ROOT / "code" / "pretrain.py"



def test_the_script_reads_in_one_sitting_and_the_modules_stay_small():
    """code/pretrain.py is about 300 lines in run order with main() last; no module passes 400."""
    script = (ROOT / "code" / "pretrain.py").read_text(encoding="utf-8")
    tree = ast.parse(script)
    defs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert len(script.splitlines()) <= 330
    assert defs[-1] == "main" and defs.index("train") < defs.index("main")
    assert defs.index("parse_args") < defs.index("prepare_data") < defs.index("train")
    for module in (ROOT / "code" / "llm_pretrain").glob("*.py"):
        text = module.read_text(encoding="utf-8")
        if text.startswith(export.HEADER):  # generated; __init__.py and exercises.py are not
            assert len(text.splitlines()) <= 400, module.name
            assert "__all__ = [" in text, module.name


def test_generated_files_are_ruff_formatted():
    result = subprocess.run([sys.executable, "-m", "ruff", "format", "--check", "code/"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
