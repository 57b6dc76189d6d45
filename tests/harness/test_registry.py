"""The one registry mechanism (harness/registry.py): lazy entries are known by name before their module is
imported, and executors, tuners and report formats all use it."""
from __future__ import annotations

import subprocess
import sys

import pytest

from harness.errors import ConfigError
from harness.registry import Registry
from tests.conftest import ROOT


def test_a_lazy_entry_is_named_at_once_and_imported_on_first_use():
    reg: Registry[object] = Registry("thing")
    reg.register("path", lazy="os.path:join")
    reg.add("now", 1)
    assert list(reg) == ["now", "path"] and "path" in reg
    import os.path

    assert reg.get("path") is os.path.join
    assert reg.items() == [("now", 1), ("path", os.path.join)]


def test_a_lazy_module_must_register_its_entry():
    reg: Registry[object] = Registry("thing")
    reg.register("json", lazy="json")  # importing json registers nothing here
    with pytest.raises(RuntimeError, match="did not register it"):
        reg.get("json")


def test_names_are_registered_once_and_unknown_ones_are_config_errors():
    reg: Registry[object] = Registry("thing")
    reg.register("a", lazy="os.path:join")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a", lazy="os.path:split")

    @reg.register("b")
    def b() -> None: ...

    with pytest.raises(ValueError, match="registered twice"):
        reg.add("b", 2)
    with pytest.raises(ConfigError, match="unknown thing 'c'; known: a, b"):
        reg.get("c")


def test_executors_tuners_and_report_formats_are_named_without_importing_them():
    code = ("import sys, reports, tuners, harness.execution as e\n"
            "from harness.results.render import RENDERERS\n"
            "print(sorted(e.EXECUTORS), sorted(tuners.TUNERS), sorted(RENDERERS))\n"
            "print(sorted(m for m in ('torch', 'ray', 'peft', 'matplotlib', 'reports.html', 'tuners.lora') "
            "if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    names, loaded = out.splitlines()
    assert names == ("['local', 'ray'] ['freeze', 'full', 'ia3', 'lora', 'qlora'] "
                     "['html', 'json', 'junit', 'md', 'summary', 'terminal', 'warnings']")
    assert loaded == "[]"


def test_reading_one_entry_imports_its_module_and_fills_the_others_it_registers():
    import reports  # noqa: F401
    from harness.results.render import RENDERERS
    from tuners import TUNERS

    assert RENDERERS.get("md").filename == "report.md" and RENDERERS.get("summary").filename == "summary.md"
    assert TUNERS.get("lora").name == "lora"
