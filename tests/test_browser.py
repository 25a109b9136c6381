"""Every chapter as a learner runs it: `make lab`, then Run All Cells in a real browser.

JupyterLab is started by the README's command (`make lab`) in a copy of the course, and driven
by Playwright in Debian's headless Chromium. Each chapter must run to the end with no error and
no network retry, render every figure, pass its own self-check, and its widgets must react when
a control is moved. A failing chapter leaves a screenshot in the test's tmp dir.
"""

import os
import re
import secrets
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from course_kernel import COURSE_ENV
from helpers import ROOT

pytestmark = pytest.mark.slow  # a JupyterLab server and a browser, every chapter run to the end
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("browser tests need Debian's Chromium: apt-get install chromium chromium-driver",
                allow_module_level=True)
from playwright.sync_api import sync_playwright  # noqa: E402
from torch.distributed.elastic.utils.distributed import get_free_port  # noqa: E402

CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
# what the network being refused looks like in huggingface_hub's and requests' logs
NETWORK_RETRY = re.compile(r"Retrying in \d|Max retries exceeded|ConnectionError|NameResolution")
TRACEBACK = re.compile(r"Traceback \(most recent call last\)")
WIDGET = "application/vnd.jupyter.widget-view+json"
# Chromium as root in a closed network: no sandbox, no background connections
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def copy_course(dest: Path) -> None:
    """The files a fresh clone has (tracked and new, not ignored), mtimes kept for make."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "-co", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)


def wait_for_server(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"no answer from {url}")


class Lab:
    """A JupyterLab server on loopback, opened in the given browser."""

    def __init__(self, cmd: list[str], cwd: Path, log: Path, browser):
        self.browser = browser
        self.port, self.token = get_free_port(), secrets.token_hex(16)
        args = (f"--no-browser --ip=127.0.0.1 --port={self.port} "
                f"--IdentityProvider.token={self.token}")
        # a learner's shell: none of the course settings (conftest.py put them into the tests'
        # environment) and no venv first on PATH; the kernel must bring them itself
        env = {k: v for k, v in os.environ.items() if k not in COURSE_ENV}
        env["LAB_ARGS"] = args
        venv_bin = str(ROOT / ".venv" / "bin")
        env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)
        if cmd[0] != "make":
            cmd = [*cmd, *args.split()]
        self.log = log.open("w")
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for_server(f"http://127.0.0.1:{self.port}/api/status?token={self.token}", self.proc)

    def open(self, notebook: str):
        page = self.browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{self.port}/lab/tree/{notebook}?reset&token={self.token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        wait_idle(page)
        return page

    def close(self) -> None:
        os.killpg(self.proc.pid, 15)
        self.proc.wait(timeout=30)
        self.log.close()


def wait_idle(page, timeout: float = 120) -> None:
    """Until the status bar reads `... | Idle`: the kernel has started and finished."""
    page.wait_for_function(
        "() => /\\|\\s*Idle/.test(document.querySelector('.jp-StatusBar-Widget')?.parentElement"
        "?.textContent ?? '')", timeout=timeout * 1000)


def menu(page, top: str, item: str) -> None:
    page.click(f".lm-MenuBar-itemLabel:text-is('{top}')")
    page.click(f".lm-Menu-itemLabel:text-is('{item}')")


def run_all(page, n_code_cells: int, timeout: float) -> None:
    """Clear the stored outputs, Run > Run All Cells, wait until every code cell has its count."""
    menu(page, "Edit", "Clear Outputs of All Cells")
    page.wait_for_function("() => ![...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
                           ".some(p => /\\[\\d+\\]/.test(p.textContent))")
    menu(page, "Run", "Run All Cells")
    deadline, idle_polls = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        time.sleep(2)
        prompts = page.eval_on_selector_all(".jp-CodeCell .jp-InputPrompt",
                                            "els => els.map(e => e.textContent)")
        if sum(bool(re.search(r"\[\d+\]", p)) for p in prompts) == n_code_cells:
            return
        # Run All stops at a cell that raised: the kernel goes idle with cells left unrun
        idle_polls = idle_polls + 1 if not any("*" in p for p in prompts) else 0
        if idle_polls >= 3:
            raise AssertionError("Run All stopped early:\n" + first_error(page))
    raise TimeoutError(f"Run All did not finish within {timeout} s")


def first_error(page) -> str:
    """The text of the first output with a traceback, scrolled into view for the screenshot."""
    for output in page.locator(".jp-OutputArea-output").all():
        text = output.text_content() or ""
        if TRACEBACK.search(text) or "Error" in text:
            output.scroll_into_view_if_needed()
            return text[-3000:]
    return "(no error output found)"


def outputs_text(page, mime: str) -> list[str]:
    return page.eval_on_selector_all(
        f".jp-OutputArea-output[data-mime-type='{mime}']", "els => els.map(e => e.textContent)")


def stored(notebook: Path) -> dict:
    """What the committed notebook shows: code cells, figures, widgets, passed self-checks."""
    nb = nbformat.read(notebook, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    outputs = [o for c in cells for o in c.outputs]
    return {
        "code_cells": len(cells),
        "images": sum("image/png" in o.get("data", {}) for o in outputs),
        "widgets": sum(WIDGET in o.get("data", {}) for o in outputs),
        "checks": sum("all checks passed" in o.get("text", "") for o in outputs),
    }


def move_a_control(page, widget) -> None:
    """Pick another option of the widget's first dropdown and wait for its output to change."""
    output = widget.locator(".widget-output")
    before = output.text_content()
    select = widget.locator("select").first
    options = select.locator("option").all_text_contents()
    current = select.evaluate("s => s.options[s.selectedIndex].textContent")
    select.select_option(label=next(o for o in options if o != current))
    page.wait_for_function("([el, before]) => el.textContent !== before && el.textContent.trim()",
                           arg=[output.element_handle(), before], timeout=120_000)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("clone")
    copy_course(dest)
    return dest


@pytest.fixture(scope="module")
def make_lab(course, browser, tmp_path_factory):
    """`make lab` in the copy, on the course's own environment."""
    lab = Lab(["make", "lab", f"VENV={ROOT / '.venv'}"], course,
              tmp_path_factory.mktemp("logs") / "make_lab.log", browser)
    yield lab
    lab.close()


def check_chapter(page, expected: dict, shots: Path, name: str, timeout: float) -> str:
    """Run All, then assert what the learner sees; a screenshot on failure. Returns stdout."""
    try:
        run_all(page, expected["code_cells"], timeout)
        stderr = "\n".join(outputs_text(page, "application/vnd.jupyter.stderr"))
        stdout = "\n".join(outputs_text(page, "application/vnd.jupyter.stdout"))
        assert not TRACEBACK.search(stderr + stdout), stderr[-3000:]
        assert not NETWORK_RETRY.search(stderr + stdout), stderr[-3000:]
        images = page.eval_on_selector_all(".jp-OutputArea-output img",
                                           "els => els.filter(e => e.naturalWidth > 0).length")
        assert images >= expected["images"], f"{images} figures, stored {expected['images']}"
        assert stdout.count("all checks passed") == expected["checks"] > 0
        widgets = page.locator(".jp-OutputArea-output .widget-interact")
        assert widgets.count() == expected["widgets"]
        for i in range(widgets.count()):
            move_a_control(page, widgets.nth(i))
        return stdout
    except Exception:
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        raise


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_runs_in_jupyterlab(make_lab, notebook, tmp_path):
    page = make_lab.open(notebook.name)
    try:
        stdout = check_chapter(page, stored(notebook), tmp_path, notebook.stem, timeout=600)
    finally:
        page.close()
    if notebook.stem == "05_script":
        assert "exit code 0" in stdout and "tokens per optimizer step" in stdout


def test_plain_jupyter_lab_from_the_venv_gives_the_course_kernel(course, browser, tmp_path):
    """A learner who types `.venv/bin/jupyter lab` instead of `make lab` gets the same kernel."""
    lab = Lab([str(ROOT / ".venv" / "bin" / "jupyter"), "lab", "--allow-root"], course / "chapters",
              tmp_path / "jupyter_lab.log", browser)
    try:
        page = lab.open("00_setup.ipynb")
        stdout = check_chapter(page, stored(CHAPTERS[0]), tmp_path, "00_setup", timeout=300)
    finally:
        lab.close()
    assert "HF_HUB_OFFLINE           '1'" in stdout
    assert "`python` in a subprocess is this kernel's: True" in stdout
