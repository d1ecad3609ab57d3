"""The production install is the daemon: development tools stay out, and nothing it ships needs them."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import tomllib

import pytest
from setuptools import find_namespace_packages

from tests.booth_support import REPO

DEV_TOOLS = ("edge.cloudsim", "edge.synth", "edge.train")


def shipped_packages() -> list[str]:
    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    return find_namespace_packages(str(REPO), include=find["include"], exclude=find["exclude"])


def test_the_wheel_leaves_the_cloud_simulator_renderer_and_training_out() -> None:
    packages = shipped_packages()
    assert {"edge", "edge.daemon", "edge.spool", "edge.publish", "edge.mirror", "edge.api"} <= set(packages)
    assert [p for p in packages if p.startswith(DEV_TOOLS)] == []


def test_nothing_the_wheel_ships_imports_a_development_tool_unguarded() -> None:
    for package in shipped_packages():
        for path in (REPO / package.replace(".", "/")).glob("*.py"):
            if path == REPO / "edge" / "cli.py":
                continue  # its dev-tool commands say how to get them when they are missing
            for node in ast.walk(ast.parse(path.read_text())):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
                assert not [n for n in names if n.startswith(DEV_TOOLS)], f"{path} imports {names}"


def test_a_development_install_still_has_the_simulator_and_the_training_command() -> None:
    sim = subprocess.run(
        [sys.executable, "-m", "edge.cli", "cloud-sim", "--help"], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert sim.returncode == 0 and "--key" in sim.stdout
    train = _train_main("--help")
    assert "edge-grader-train" in train.stdout


def _train_main(*args: str) -> subprocess.CompletedProcess[str]:
    code = f"from edge.cli import train_main; import sys; sys.argv = ['t', *{list(args)!r}]; sys.exit(train_main())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)


@pytest.mark.skipif(importlib.util.find_spec("keras") is not None, reason="this venv has the train extra")
def test_training_without_the_train_extra_says_what_to_install() -> None:
    train = _train_main()
    assert train.returncode == 2, train.stderr
    assert "edge-grader-train needs the train extra (keras is missing): pip install -e '.[dev,train]'" in train.stderr


@pytest.mark.parametrize("argv", [["cloud-sim"], ["cloud-sim", "--port", "8091", "--key", "k"]])
def test_a_production_install_says_the_simulator_is_a_development_tool_whatever_its_options(argv: list[str]) -> None:
    # As where the wheel left edge.cloudsim out: importing it fails.
    code = f"import sys; sys.modules['edge.cloudsim'] = None; from edge.cli import main; sys.exit(main({argv!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 2, done.stderr
    hint = "is a development tool, not in a production install: pip install -e '.[dev]' in a clone"
    assert done.stderr.strip() == f"edge-grader cloud-sim {hint}"
