"""Reading the bake-off YAML: the file (read_yaml), `key=value` overrides applied to the raw mapping (apply_override),
and the builder that turns a raw mapping into a config dataclass, rejecting unknown keys and wrong types (build).

The sections themselves are the other modules of this package; a section class tells `build` what it needs beyond its
fields: `shorthand` (a bare string stands for that key: `- support_intents` is `{spec: support_intents}`) and
`gather(raw, where)` (its mapping rewritten before the keys are checked: the recipe's tuner options).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError


def check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError("file not found", path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError("not UTF-8 text", path, path.read_bytes()[: err.start].count(b"\n") + 1) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(f"invalid YAML: {problem}", path, line) from None
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping at the top level", path)
    return raw


SHORTHAND = {"candidates": "model", "benchmarks": "spec", "probes": "spec", "bias": "spec"}  # `- name` entries


def apply_override(raw: dict[str, Any], item: str) -> None:
    """`recipe.epochs=1` sets raw['recipe']['epochs'] = 1 (the value is parsed as YAML); a number indexes a list:
    `candidates.0.learning_rate=1e-4`, `benchmarks.1.max_test=50` (a `- support_intents` entry becomes its mapping)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override must look like key=value (got {item!r})")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {item!r}: invalid YAML value ({getattr(err, 'problem', None) or err})") from None
    *parents, leaf = key.split(".")
    node: Any = raw
    path: list[str] = []
    for depth, part in enumerate(parents):
        index = _slot(node, part, item, path)
        if isinstance(node, dict) and part not in node and (parents + [leaf])[depth + 1].isdigit():
            raise ConfigError(f"override {item!r}: '{'.'.join([*path, part])}' is not in the config; "
                              "there is no list to index")
        child = node[index] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(child, str) and isinstance(node, list) and path[-1] in SHORTHAND:
            child = node[index] = {SHORTHAND[path[-1]]: child}
        if not isinstance(child, (dict, list)):
            raise ConfigError(f"override {item!r}: '{'.'.join([*path, part])}' holds {child!r}, "
                              "not a mapping or a list")
        node, path = child, [*path, part]
    node[_slot(node, leaf, item, path)] = parsed


def _slot(node: dict[str, Any] | list[Any], part: str, item: str, path: list[str]) -> Any:
    """Where `part` points in `node`: a list index (checked against the list's length) or a mapping key."""
    where = ".".join(path) or "the config"
    if isinstance(node, list):
        if not part.isdigit():
            raise ConfigError(f"override {item!r}: '{where}' is a list; index it with a number (got {part!r})")
        if int(part) >= len(node):
            raise ConfigError(f"override {item!r}: index {part} is out of range ('{where}' has {len(node)} "
                              f"entr{'y' if len(node) == 1 else 'ies'}, 0..{len(node) - 1})" if node else
                              f"override {item!r}: index {part} is out of range ('{where}' is empty)")
        return int(part)
    if part.isdigit():
        raise ConfigError(f"override {item!r}: '{where}' is a mapping, not a list; it has no index {part}")
    return part


def build(cls: type, raw: Any, where: str) -> Any:  # noqa: C901
    """Construct dataclass `cls` from a raw mapping, rejecting unknown keys and wrong types."""
    label = where or "config"
    shorthand = getattr(cls, "shorthand", "")  # `- support_intents` stands for {spec: support_intents}
    if isinstance(raw, str) and shorthand:
        raw = {shorthand: raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"{label} must be a mapping, got {type(raw).__name__}")
    if hasattr(cls, "gather"):  # the recipe: its tuner's options, written flat or in a section, into `options`
        raw = cls.gather(raw, label)
    # YAML 1.1 reads an unquoted key `on` (a gate's `on: ci_low`) as the boolean true, and `off`, `yes`, `no` too
    raw = {("on" if k is True else "off" if k is False else str(k)): v for k, v in raw.items()}
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown key {'/'.join(unknown)!r} in {label}; "
                          f"known: {', '.join(sorted(known - {'source'}))}")
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [k for k in required if k not in raw]
    if missing:
        raise ConfigError(f"missing required key '{missing[0]}' in {label}")
    kwargs = {key: coerce(hints[key], value, f"{where}.{key}" if where else key) for key, value in raw.items()}
    try:
        return cls(**kwargs)
    except ConfigError as err:  # say which list entry is wrong: `benchmarks[1]: max_train must be positive`
        if not where or err.message.startswith(where):
            raise
        raise ConfigError(f"{where}: {err.message}") from None


ON_OFF = ("recipe.bf16", "recipe.eval_metric")  # settings spelled auto | on | off


def coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return coerce(option, value, where)
            except ConfigError as err:
                if isinstance(value, dict) and dataclasses.is_dataclass(option):
                    raise  # a mapping meant this option: its own error names the key
                errors.append(err.message)
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where} has the wrong type ({type(value).__name__})")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list")
        (item,) = typing.get_args(hint)
        return [coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):  # a type hint is a class, never an instance
        return build(hint, value, where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:  # YAML 1.1 reads 5e-3 as a string
            return float(value)
        except ValueError:
            pass
    if hint is str and isinstance(value, bool) and where in ON_OFF:  # YAML 1.1 reads an unquoted on/off as a bool
        return "on" if value else "off"
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ConfigError(f"{where} must be {hint.__name__}, got {type(value).__name__} {value!r}")
    return value
