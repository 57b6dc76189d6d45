"""results.json itself as a report format (`sftbench report RUN --format json`): the results model's JSON form."""
from __future__ import annotations

import json

from harness.results.model import Results
from harness.results.render import renderer


@renderer("json")
def render_json(results: Results) -> str:
    return json.dumps(results.to_json(), indent=1, default=float)
