"""Every notebook is stored as a learner would see it after a fresh top-to-bottom run."""

import re

import nbformat
import pytest
from nbval.plugin import comment_markers

from course_kernel import KERNEL_NAME
from helpers import NOTEBOOKS, ROOT


def test_chapters_are_numbered_in_order():
    names = [p.name for p in NOTEBOOKS if p.parent.name == "chapters"]
    assert names and all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", n) for n in names)
    numbers = [int(n[:2]) for n in names]
    assert numbers == list(range(len(numbers)))


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def notebook(request):
    return nbformat.read(request.param, as_version=4)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_notebooks_select_the_course_kernel(notebook):
    # the kernel `make setup` installs: the same environment in JupyterLab, VS Code and nbval
    assert notebook.metadata["kernelspec"]["name"] == KERNEL_NAME


def test_execution_counts_are_1_to_n(notebook):
    counts = [c.execution_count for c in code_cells(notebook)]
    assert counts == list(range(1, len(counts) + 1))


def test_no_execution_timestamps(notebook):
    # tools/execute.py runs with record_timing=False: timestamps would change every line on rerun
    assert all("execution" not in c.metadata for c in code_cells(notebook))


def test_no_stored_errors(notebook):
    for cell in code_cells(notebook):
        assert all(o.output_type != "error" for o in cell.outputs), cell.source[:80]


def test_cells_do_not_end_with_a_semicolon_or_use_magics_or_pip(notebook):
    for cell in code_cells(notebook):
        assert not cell.source.rstrip().endswith(";"), cell.source[:80]
        assert not re.search(r"^\s*[%!]", cell.source, re.M), cell.source[:80]


def test_nbval_markers_are_read_by_nbval_and_say_why(notebook):
    # nbval honours a comment line that is exactly its marker: `# NBVAL_SKIP: why` is ignored
    for cell in code_cells(notebook):
        lines = cell.source.splitlines()
        for i, line in enumerate(lines):
            if "NBVAL_" not in line:
                continue
            assert line.strip().lstrip("#").strip() in comment_markers, line
            why = lines[i + 1] if i + 1 < len(lines) else ""
            assert re.fullmatch(r"# .{10,}", why), f"say why below {line!r}: {cell.source[:80]}"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.parent.name == "chapters"],
                         ids=lambda p: p.name)
def test_chapters_follow_the_skeleton(path):
    notebook = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    for heading in ("目标", "自检", "练习", "小结"):
        assert heading in text, f"chapter skeleton misses {heading}"


@pytest.mark.parametrize("name", ["03_data", "04_trainer", "05_script"])
def test_main_path_comes_before_the_optional_sections(name):
    """Optional sections are marked 选读 and the appendix comes last: a learner who stops at the
    first one has read the whole main path, self-check and exercises included."""
    notebook = nbformat.read(ROOT / "chapters" / f"{name}.ipynb", as_version=4)
    headings = [line for c in notebook.cells if c.cell_type == "markdown"
                for line in c.source.splitlines() if re.match(r"##\s", line)]
    optional = [i for i, h in enumerate(headings) if "选读" in h or h.startswith("## 附录")]
    main_path = [h for i, h in enumerate(headings) if i not in optional]
    assert optional and any(h.startswith("## 附录") for h in headings)
    assert any("小结" in h for h in main_path) and any("自检" in h for h in main_path)
