"""Files in harness/ stay under about 400 lines and functions under about 60 (the style guide), or docs/architecture.md
"Sizes" says why not: its bullets are the allow-list. An offender the docs do not name fails, and so does a bullet
whose file or function is back under the limit, so the list can neither grow silently nor go stale."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import ROOT

FILE_LINES = 400
FUNCTION_LINES = 60


def offenders(root: Path) -> dict[str, int]:
    """`harness/x.py` -> its line count for each file over FILE_LINES, and `harness/x.py:Class.method` -> its line
    count (decorators included) for each function over FUNCTION_LINES."""
    found: dict[str, int] = {}
    for path in sorted((root / "harness").rglob("*.py")):
        name, text = path.relative_to(root).as_posix(), path.read_text(encoding="utf-8")
        if (lines := len(text.splitlines())) > FILE_LINES:
            found[name] = lines
        for qualname, node in _functions(ast.parse(text), ""):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            if (lines := node.end_lineno - first + 1) > FUNCTION_LINES:  # type: ignore[operator]
                found[f"{name}:{qualname}"] = lines
    return found


def _functions(node: ast.AST, prefix: str):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            qualname = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                yield qualname, child
            yield from _functions(child, f"{qualname}.")
        else:
            yield from _functions(child, prefix)


def documented(architecture: str) -> dict[str, str]:
    """The Sizes section's bullets: `- \\`harness/x.py[:function]\\` (N lines): why` -> why."""
    section = architecture.split("\n## Sizes\n", 1)[1].split("\n## ", 1)[0]
    bullets = re.findall(r"^- `([^`]+)` \(\d+ lines\): (.+?)(?=^- |\Z)", section, flags=re.M | re.S)
    return {name: " ".join(why.split()) for name, why in bullets}


def test_every_oversized_file_and_function_in_harness_is_explained_in_the_architecture_doc():
    found = offenders(ROOT)
    allowed = documented((ROOT / "docs" / "architecture.md").read_text(encoding="utf-8"))
    unexplained = {name: lines for name, lines in found.items() if name not in allowed}
    assert not unexplained, (f"over {FILE_LINES} lines a file or {FUNCTION_LINES} a function, with no bullet in "
                             f"docs/architecture.md 'Sizes' saying why: {unexplained}")
    stale = sorted(set(allowed) - set(found))
    assert not stale, f"docs/architecture.md 'Sizes' names what is within the limits now; remove: {stale}"
    assert all(len(why) > 20 for why in allowed.values()), allowed


def test_the_check_finds_long_files_and_functions_and_reads_the_bullets(tmp_path):
    (tmp_path / "harness" / "sub").mkdir(parents=True)
    lines = [f"x{i} = {i}" for i in range(FUNCTION_LINES)]
    method = "\n".join(f"        {line}" for line in lines)  # def + 60 lines: one over
    (tmp_path / "harness" / "sub" / "long.py").write_text(
        f"class A:\n    @staticmethod\n    def short():\n        pass\n\n    def long(self):\n{method}\n"
        + "\n" * (FILE_LINES - FUNCTION_LINES))
    function = "\n".join(f"    {line}" for line in lines[2:])  # decorator, def and 58 lines: at the limit
    (tmp_path / "harness" / "fine.py").write_text(f"@decorated\ndef fine():\n{function}\n")
    assert offenders(tmp_path) == {"harness/sub/long.py": FILE_LINES + 6, "harness/sub/long.py:A.long": 61}
    doc = ("# x\n## Sizes\n\nintro\n\n- `harness/a.py` (500 lines): a reason that\n  runs over two lines.\n"
           "- `harness/b.py:f` (70 lines): another reason, long enough.\n\n## Next\n- `harness/c.py` (1 lines): no\n")
    assert documented(doc) == {"harness/a.py": "a reason that runs over two lines.",
                               "harness/b.py:f": "another reason, long enough."}
