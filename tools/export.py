"""Stitch the `#| export` cells of chapters/NN_*.ipynb, in chapter order, into code/pretrain.py.

    python tools/export.py           # regenerate code/pretrain.py
    python tools/export.py --check   # exit 1 when code/pretrain.py does not match the notebooks

Imports from all exported cells are gathered once at the top (after the module docstring, which
comes from the cell that defines `main()`); each cell keeps a provenance marker naming its
notebook and cell, so a reader of the script knows where to edit.
"""

import argparse
import ast
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
SCRIPT = ROOT / "code" / "pretrain.py"
MARK = "#| export"
HEADER = "# GENERATED from chapters/*.ipynb by tools/export.py: edit the notebooks, not this file.\n"
FOOTER = '\n\nif __name__ == "__main__":\n    main()\n'


def exported_cells(chapters: Path = CHAPTERS) -> list[tuple[str, int, str]]:
    """(notebook name, cell index, source without the marker) of every export cell, in order."""
    cells = []
    for nb_path in sorted(chapters.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        for i, cell in enumerate(nb.cells):
            lines = cell.source.splitlines()
            if cell.cell_type == "code" and lines and lines[0].strip() == MARK:
                cells.append((nb_path.name, i, "\n".join(lines[1:]).strip("\n")))
    return cells


def split_cell(source: str) -> tuple[str | None, list[str], str]:
    """Split a cell into (module docstring, top-level import lines, the rest)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    docstring, drop = None, set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            drop.update(range(node.lineno - 1, node.end_lineno))
        elif (node is tree.body[0] and isinstance(node, ast.Expr)
              and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            docstring = ast.get_source_segment(source, node)
            drop.update(range(node.lineno - 1, node.end_lineno))
    imports = ["\n".join(lines[n.lineno - 1:n.end_lineno]) for n in tree.body
               if isinstance(n, (ast.Import, ast.ImportFrom))]
    body = "\n".join(line for k, line in enumerate(lines) if k not in drop).strip("\n")
    return docstring, imports, body


def render(chapters: Path = CHAPTERS) -> str:
    docstring, imports, parts = None, [], []
    for name, index, source in exported_cells(chapters):
        doc, cell_imports, body = split_cell(source)
        docstring = docstring or doc
        imports += [imp for imp in cell_imports if imp not in imports]
        parts.append(f"# ---- chapters/{name}, cell {index} ----\n{body}")
    future = [imp for imp in imports if imp.startswith("from __future__")]
    rest = [imp for imp in imports if imp not in future]
    head = HEADER + (docstring + "\n" if docstring else "")
    return head + "\n".join(future + rest) + "\n\n\n" + "\n\n\n".join(parts) + FOOTER


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if code/pretrain.py is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not SCRIPT.exists() or SCRIPT.read_text(encoding="utf-8") != text:
            sys.exit("code/pretrain.py is stale: run `python tools/export.py` and commit it")
        return
    SCRIPT.write_text(text, encoding="utf-8")
    print(f"wrote {SCRIPT.relative_to(ROOT)} from {len(exported_cells())} exported cells")


if __name__ == "__main__":
    main()
