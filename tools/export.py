"""Stitch the `#| export` cells of chapters/NN_*.ipynb, in chapter order, into code/pretrain.py.

    python tools/export.py           # regenerate code/pretrain.py and code/classroom.py
    python tools/export.py --check   # exit 1 when either does not match the notebooks

Cells marked `#| export classroom` (the chapters' interactive explorers) go to code/classroom.py
instead, so the training script carries nothing that only the classroom needs.

Imports from all exported cells are merged and sorted once at the top, after the module docstring
(which comes from the cell that defines `main()`); each cell keeps a provenance marker naming
its notebook and cell, so a reader of the script knows where to edit.
"""

import argparse
import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
TARGETS = {"pretrain": ROOT / "code" / "pretrain.py", "classroom": ROOT / "code" / "classroom.py"}
MARK = "#| export"
HEADER = "# GENERATED from chapters/*.ipynb by tools/export.py: edit the notebooks instead.\n"
FOOTER = '\n\nif __name__ == "__main__":\n    main()\n'


def exported_cells(chapters: Path = CHAPTERS, target: str = "pretrain") -> list[tuple]:
    """(notebook name, cell index, source without the marker) of `target`'s cells, in order."""
    marker = MARK if target == "pretrain" else f"{MARK} {target}"
    cells = []
    for nb_path in sorted(chapters.glob("[0-9][0-9]_*.ipynb")):
        notebook = json.loads(nb_path.read_text(encoding="utf-8"))  # plain JSON: no Jupyter needed
        for i, cell in enumerate(notebook["cells"]):
            source = cell["source"]
            lines = ("".join(source) if isinstance(source, list) else source).splitlines()
            if cell["cell_type"] == "code" and lines and " ".join(lines[0].split()) == marker:
                cells.append((nb_path.name, i, "\n".join(lines[1:]).strip("\n")))
    return cells


def notebook_function(notebook: Path, name: str):
    """The function `name` as a code cell of `notebook` defines it: chapter 03's readable
    `group_texts`, which is taught but not exported, for comparing it with the exported one."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    (source,) = [s for s in sources if f"def {name}(" in s]
    namespace = {}
    exec(source, namespace)
    return namespace[name]


def split_cell(source: str) -> tuple[str | None, list[ast.stmt], str]:
    """Split a cell into (module docstring, top-level import statements, the rest)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    docstring, imports, drop = None, [], set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(node)
        elif node is tree.body[0] and isinstance(node, ast.Expr) and isinstance(
            node.value, ast.Constant
        ) and isinstance(node.value.value, str):
            docstring = ast.get_source_segment(source, node)
        else:
            continue
        drop.update(range(node.lineno - 1, node.end_lineno))
    body = "\n".join(line for k, line in enumerate(lines) if k not in drop).strip("\n")
    return docstring, imports, body


def from_import(module: str, names: list[str]) -> str:
    line = f"from {module} import {', '.join(names)}"
    if len(line) <= 100:
        return line
    return f"from {module} import (\n" + "".join(f"    {n},\n" for n in names) + ")"


def import_block(nodes: list[ast.stmt]) -> str:
    """One sorted import line per module, standard library first (isort style)."""
    plain, names = set(), {}
    for node in nodes:
        if isinstance(node, ast.Import):
            plain.update(ast.unparse(ast.Import(names=[alias])) for alias in node.names)
        else:
            names.setdefault(node.module, set()).update(
                a.name + (f" as {a.asname}" if a.asname else "") for a in node.names
            )
    lines = list(plain) + [from_import(module, sorted(ns)) for module, ns in names.items()]

    def module(line: str) -> str:
        return line.split()[1]

    def key(line: str) -> tuple:
        return (module(line).split(".")[0] not in sys.stdlib_module_names, line.startswith("from"),
                module(line))

    lines.sort(key=key)
    stdlib = [line for line in lines if not key(line)[0]]
    third = [line for line in lines if key(line)[0]]
    return "\n\n".join("\n".join(group) for group in (stdlib, third) if group)


def render(chapters: Path = CHAPTERS, target: str = "pretrain") -> str:
    docstring, imports, parts = None, [], []
    for name, index, source in exported_cells(chapters, target):
        try:
            doc, cell_imports, body = split_cell(source)
        except SyntaxError as err:
            sys.exit(f"chapters/{name}, cell {index}: {err.msg} (line {err.lineno} of the cell)")
        docstring = docstring or doc
        imports += cell_imports
        parts.append(f"# ---- chapters/{name}, cell {index} ----\n{body}")
    head = HEADER + (docstring + "\n" if docstring else "")
    footer = FOOTER if target == "pretrain" else "\n"
    first = (parts[0].splitlines() + [""])[1] if parts else ""
    gap = "\n\n\n" if first.startswith(("def ", "class ", "@")) else "\n\n"  # isort's rule
    return head + import_block(imports) + gap + "\n\n\n".join(parts) + footer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated file is stale")
    args = parser.parse_args()
    for target, path in TARGETS.items():
        text = render(target=target)
        name = path.relative_to(ROOT)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                sys.exit(f"{name} is stale: run `python tools/export.py` and commit it")
            continue
        path.write_text(text, encoding="utf-8")
        print(f"wrote {name} from {len(exported_cells(target=target))} exported cells")


if __name__ == "__main__":
    main()
