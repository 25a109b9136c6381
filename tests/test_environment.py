"""The pinned environment: requirements.txt and environment.yml cannot drift apart."""

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from jupyter_client.kernelspec import KernelSpecManager

from course_kernel import COURSE_ENV, KERNEL_NAME
from helpers import ROOT


def requirement_lines() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_every_requirement_is_pinned_exactly():
    for line in requirement_lines():
        name, sep, version = line.partition("==")
        assert sep and name and version, f"not an exact pin: {line!r}"


def test_environment_yml_installs_the_same_list():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    assert "conda-forge" in env["channels"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_section == requirement_lines()


def test_installed_versions_match_the_pins():
    for line in requirement_lines():
        name, _, version = line.partition("==")
        assert importlib.metadata.version(name).split("+")[0] == version, name


def test_python_is_311():
    assert sys.version_info[:2] == (3, 11)


def test_suite_runs_in_the_kernels_environment():
    assert {k: os.environ[k] for k in COURSE_ENV} == COURSE_ENV
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["CUDA_VISIBLE_DEVICES"] == ""


def test_setup_installed_the_course_kernel_into_the_venv():
    subprocess.run([sys.executable, ROOT / "tools" / "course_kernel.py", "--check"], check=True)
    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    assert Path(spec.resource_dir).is_relative_to(sys.prefix)
    assert spec.argv[0] == str(Path(sys.prefix) / "bin" / "python")
    assert {k: spec.env[k] for k in COURSE_ENV} == COURSE_ENV
    assert spec.env["PATH"] == f"{Path(sys.prefix) / 'bin'}:${{PATH}}"
    gpu = KernelSpecManager().get_kernel_spec(f"{KERNEL_NAME}-gpu")
    assert "CUDA_VISIBLE_DEVICES" not in gpu.env and gpu.env["HF_HUB_OFFLINE"] == "1"


def test_a_stale_kernel_is_reported(tmp_path):
    kernel = tmp_path / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json"
    kernel.parent.mkdir(parents=True)
    kernel.write_text(json.dumps({"argv": ["python3"], "env": {}}))
    check = subprocess.run(  # course_kernel.py reads the prefix from sys.prefix: fake a venv
        [sys.executable, "-c", f"import sys; sys.prefix = {str(tmp_path)!r}; "
         f"sys.argv = ['course_kernel.py', '--check']; "
         f"exec(open({str(ROOT / 'tools' / 'course_kernel.py')!r}).read())"],
        capture_output=True, text=True)
    assert check.returncode == 1
    assert check.stderr.startswith("course_kernel.py: error: out of date, run `make setup`")


def test_setup_refuses_another_python_in_one_line(tmp_path):
    # A stand-in for Ubuntu 24.04's python3.12: the real interpreter reporting another version.
    fake = tmp_path / "python3.12"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'import sys; sys.version_info = "
                    f"(3, 12, 3, \"final\", 0); sys.argv = sys.argv[1:]; "
                    f"exec(open(sys.argv[0]).read())' \"$@\"\n")
    fake.chmod(0o755)
    venv = tmp_path / "venv"
    setup = subprocess.run(["make", "-s", "setup", f"PYTHON={fake}", f"VENV={venv}"], cwd=ROOT,
                           capture_output=True, text=True)
    assert setup.returncode != 0 and not venv.exists()
    first = setup.stderr.splitlines()[0]
    assert first.startswith("make setup: error: the course needs Python 3.11, found 3.12.3")
    for way in ("conda env create -f environment.yml", "uv python install 3.11", "pyenv install"):
        assert way in first
