"""The pinned environment: requirements.txt and environment.yml cannot drift apart."""

import importlib.metadata
import os
import sys

import yaml

from conftest import ROOT


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


def test_suite_runs_offline():
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
