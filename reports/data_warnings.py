"""warnings.txt: every data warning of a run, one `path:line: message` a line (`sftbench report RUN --format
warnings`). The terminal and the other reports list a few of each kind (reports/format.py capped) and name this file."""
from __future__ import annotations

from harness.results.model import Results
from harness.results.render import renderer
from reports.format import WARNINGS_FILE, warning_lines


@renderer("warnings", WARNINGS_FILE)
def render_warnings(results: Results) -> str:
    lines = warning_lines(results, limit=None)
    head = (f"# {len(lines)} data warning{'s' * (len(lines) != 1)} of run {results.run_id} (`sftbench validate` lints "
            "the same)")
    return "\n".join([head, *lines]) + "\n"
