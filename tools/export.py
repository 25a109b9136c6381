"""Stitch the `#| export` cells of chapters/NN_*.ipynb, in chapter order, into the course's code.

    python tools/export.py           # regenerate code/pretrain.py and code/llm_pretrain/*.py
    python tools/export.py --check   # exit 1 when a generated file does not match the notebooks

A cell whose first line is `#| export <module>` goes to `code/llm_pretrain/<module>.py`, the
installed package (one concern per module: paths, model, data, prepare, metrics, checks, resume,
classroom); a cell marked `#| export` alone goes to `code/pretrain.py`, the entry script a learner
reads top-down, which imports the package.

Per file: the imports of its cells are merged and sorted once at the top, after the module
docstring (from its first cell that opens with one); each cell keeps a provenance marker naming
its notebook and cell, so a reader knows where to edit; a module gets an `__all__` of its public
names. The result is formatted with `ruff format`, as `make lint` checks it.
"""

import argparse
import ast
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
CODE = ROOT / "code"
PACKAGE = "llm_pretrain"
SCRIPT = "pretrain"  # the target of a bare `#| export`
MARK = "#| export"
HEADER = "# GENERATED from chapters/*.ipynb by tools/export.py: edit the notebooks instead.\n"
FOOTER = '\n\nif __name__ == "__main__":\n    main()\n'


def target_path(target: str, code: Path = CODE) -> Path:
    """Where a target is written: the script, or a module of the package."""
    return code / "pretrain.py" if target == SCRIPT else code / PACKAGE / f"{target}.py"


def cell_target(source: str) -> str | None:
    """The target a code cell exports to (`pretrain` for a bare marker), or None."""
    first = " ".join((source.splitlines() or [""])[0].split())
    if first == MARK:
        return SCRIPT
    if first.startswith(MARK + " ") and len(first.split()) == 3:
        return first.split()[2]
    return None


def notebook_cells(chapters: Path = CHAPTERS):
    """(notebook name, cell index, source) of every code cell, in chapter order."""
    for nb_path in sorted(chapters.glob("[0-9][0-9]_*.ipynb")):
        notebook = json.loads(nb_path.read_text(encoding="utf-8"))  # plain JSON: no Jupyter needed
        for i, cell in enumerate(notebook["cells"]):
            source = cell["source"]
            source = "".join(source) if isinstance(source, list) else source
            if cell["cell_type"] == "code":
                yield nb_path.name, i, source


def exported_cells(chapters: Path = CHAPTERS, target: str | None = None) -> list[tuple]:
    """(notebook name, cell index, source without the marker) of `target`'s cells (all exported
    cells when `target` is None), in order."""
    cells = []
    for name, i, source in notebook_cells(chapters):
        found = cell_target(source)
        if found is not None and target in (None, found):
            body = "\n".join(source.splitlines()[1:]).strip("\n")
            cells.append((name, i, body))
    return cells


def targets(chapters: Path = CHAPTERS) -> list[str]:
    """Every target named by an export marker, the script first."""
    found = {cell_target(source) for _, _, source in notebook_cells(chapters)} - {None}
    return sorted(found, key=lambda t: (t != SCRIPT, t))


def split_cell(source: str) -> tuple[str | None, list[ast.stmt], str]:
    """Split a cell into (module docstring, top-level import statements, the rest)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    docstring, imports, drop = None, [], set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(node)
        elif (
            node is tree.body[0]
            and isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            docstring = ast.get_source_segment(source, node)
        else:
            continue
        drop.update(range(node.lineno - 1, node.end_lineno))
    body = "\n".join(line for k, line in enumerate(lines) if k not in drop).strip("\n")
    return docstring, imports, body


def public_names(body: str) -> list[str]:
    """Top-level functions, classes and constants of a cell, without private or `logger`."""
    names = []
    for node in ast.parse(body).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets_ = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets_ if isinstance(t, ast.Name)]
    return [n for n in names if not n.startswith("_") and n != "logger"]


def from_import(module: str, names: list[str]) -> str:
    line = f"from {module} import {', '.join(names)}"
    if len(line) <= 100:
        return line
    return f"from {module} import (\n" + "".join(f"    {n},\n" for n in names) + ")"


def import_group(line: str) -> int:
    """isort's sections: 0 standard library, 1 third party, 2 this package."""
    top = line.split()[1].split(".")[0]
    return 0 if top in sys.stdlib_module_names else 2 if top == PACKAGE else 1


def import_block(nodes: list[ast.stmt]) -> str:
    """One sorted import line per module, in isort's three sections."""
    plain, names = set(), {}
    for node in nodes:
        if isinstance(node, ast.Import):
            plain.update(ast.unparse(ast.Import(names=[alias])) for alias in node.names)
        else:
            names.setdefault(node.module, set()).update(
                a.name + (f" as {a.asname}" if a.asname else "") for a in node.names
            )
    lines = list(plain) + [from_import(module, sorted(ns)) for module, ns in names.items()]
    lines.sort(key=lambda line: (import_group(line), line.startswith("from"), line.split()[1]))
    groups = [[line for line in lines if import_group(line) == g] for g in range(3)]
    return "\n\n".join("\n".join(group) for group in groups if group)


def ruff_command() -> list[str]:
    """The ruff of this interpreter, else of the course's .venv, else the first on PATH."""
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    for candidate in (ROOT / ".venv" / "bin" / "ruff", shutil.which("ruff")):
        if candidate and Path(candidate).is_file():
            return [str(candidate)]
    sys.exit("tools/export.py needs ruff to format the code: run `make setup`, or use "
             ".venv/bin/python tools/export.py")


def ruff_format(text: str, name: str) -> str:
    """`text` as `ruff format` writes it (the project's settings in pyproject.toml)."""
    result = subprocess.run(
        [*ruff_command(), "format", "--stdin-filename", name, "-"],
        input=text, capture_output=True, text=True, cwd=ROOT,
    )
    if result.returncode != 0:
        sys.exit(f"ruff format failed on {name}: {result.stderr.strip()}")
    return result.stdout


def render(chapters: Path = CHAPTERS, target: str = SCRIPT, fmt: bool = True) -> str:
    docstring, imports, parts, public = None, [], [], []
    for name, index, source in exported_cells(chapters, target):
        try:
            doc, cell_imports, body = split_cell(source)
        except SyntaxError as err:
            sys.exit(f"chapters/{name}, cell {index}: {err.msg} (line {err.lineno} of the cell)")
        docstring = docstring or doc
        imports += cell_imports
        public += public_names(body)
        parts.append(f"# ---- chapters/{name}, cell {index} ----\n{body}")
    head = HEADER + (docstring + "\n" if docstring else "")
    block = import_block(imports)
    if target != SCRIPT:
        block += "\n\n__all__ = [" + ", ".join(f'"{n}"' for n in public) + "]"
    runnable = target == SCRIPT or "main" in public  # `python -m llm_pretrain.launch`
    text = head + block + "\n\n\n" + "\n\n\n".join(parts) + (FOOTER if runnable else "\n")
    return ruff_format(text, target_path(target).relative_to(ROOT).as_posix()) if fmt else text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated file is stale")
    args = parser.parse_args()
    wanted = targets()
    generated = {target_path(t) for t in wanted}
    orphans = [p for p in (CODE / PACKAGE).glob("*.py")  # generated once, now exported by no cell
               if p not in generated and p.read_text(encoding="utf-8").startswith(HEADER)]
    for target in wanted:
        path = target_path(target)
        text = render(target=target)
        name = path.relative_to(ROOT)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                sys.exit(f"{name} is stale: run `python tools/export.py` and commit it")
            continue
        path.write_text(text, encoding="utf-8")
        print(f"wrote {name} from {len(exported_cells(target=target))} exported cells")
    for path in orphans:
        if args.check:
            sys.exit(f"{path.relative_to(ROOT)} is exported by no cell: delete it")
        path.unlink()
        print(f"deleted {path.relative_to(ROOT)}: no cell exports to it")


if __name__ == "__main__":
    main()
