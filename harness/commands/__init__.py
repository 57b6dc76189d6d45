"""The commands, one module each: run, validate, plan, init, ls, score, gc, and the stored-run commands (runs, show,
promote, compare, gate, report: history.py). harness/cli.py parses the arguments and calls the command's `main(args,
console)`, found in COMMANDS (the one registry mechanism, harness/registry.py): a command's module, and so torch or
Ray, loads only when that command runs. A command is the only place that talks to the user, reads the run store
for the stages below it, and turns the outcome into an exit code (harness/errors.py)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.registry import Registry

Command = Callable[[Any, Any], int]  # (argparse.Namespace, rich Console for progress) -> exit code

COMMANDS: Registry[Command] = Registry("command")
for _name, _module in (("run", "run"), ("validate", "validate"), ("plan", "plan"), ("init", "init"),
                       ("ls", "catalogue"), ("score", "catalogue"), ("gc", "gc"), ("runs", "history"),
                       ("show", "history"), ("promote", "history"), ("compare", "history"), ("gate", "history"),
                       ("report", "history")):
    COMMANDS.register(_name, lazy=f"harness.commands.{_module}:main")
