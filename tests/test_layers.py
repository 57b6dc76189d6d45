"""The layers of docs/architecture.md are the import-linter contracts of pyproject.toml, and they hold
(`make lint` runs `lint-imports` too; this keeps the document and the contract from drifting apart)."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import ROOT


def _contract(contract_id: str) -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return next(c for c in config["contracts"] if c["id"] == contract_id)


def test_the_documented_layers_are_the_contract():
    section = (ROOT / "docs" / "architecture.md").read_text().split("## Layers", 1)[1].split("\n## ", 1)[0]
    documented = [re.findall(r"`([a-z_.]+)`", line.split(" | ")[0]) for line in section.splitlines()
                  if line.startswith("| `")]
    contract = [[m.removeprefix("harness.") for m in re.split(r"\s*[:|]\s*", layer)]
                for layer in _contract("layers")["layers"]]
    assert documented == contract


def test_the_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


def test_the_files_the_code_names_exist():
    """A docstring or comment that names a file of this repository names one that is there (files move between
    layers; the names in the text did not always follow)."""
    named = re.compile(r"\b(?:harness|tuners|reports|tests|docs|benchmarks|tools)/[\w/.-]*\w\.(?:py|md|yaml|sh)\b")
    stored = {"harness/seeds.py"}  # seeds.py METHOD_PATH: part of the ci_method text results.json stores
    missing = [f"{path.relative_to(ROOT)}: {name}" for folder in ("harness", "tuners", "reports")
               for path in sorted((ROOT / folder).rglob("*.py")) for name in named.findall(path.read_text())
               if not (ROOT / name).exists() and name not in stored]
    assert missing == []


def test_the_cli_loads_no_heavy_library_before_a_command_runs():
    """cli.py imports the command registry, not the commands: torch, numpy and the rest load with the command that
    needs them, so `sftbench --help` and a usage error stay fast."""
    code = ("import sys, harness.cli; harness.cli._parser(); print(sorted(m for m in ('torch', 'transformers', 'numpy', "
            "'scipy', 'matplotlib', 'ray', 'mlflow', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
