"""JUnit XML of one results object, for CI test reporters: one testsuite `sftbench.<name>`, one testcase per
gate verdict (classname = candidate, name = gate) failing with the observed numbers, and one `ran` testcase
per candidate that fails when the candidate itself failed. ElementTree escapes markup; characters XML 1.0
cannot carry at all (ANSI escapes and other control characters in error messages) are dropped first."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from harness.results.model import Results
from harness.results.render import renderer
from reports.costs import hardware_text
from reports.format import per_benchmark_text, reliability_text

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: Any) -> str:
    return _NOT_XML.sub("", "" if value is None else str(value))


def _case(suite: ET.Element, classname: str, name: str, failure: str | None, kind: str) -> None:
    case = ET.SubElement(suite, "testcase", classname=_text(classname), name=_text(name), time="0")
    if failure is not None:
        ET.SubElement(case, "failure", message=_text(failure), type=kind).text = _text(failure)


@renderer("junit", "junit.xml")
def render_junit(results: Results) -> str:
    root = ET.Element("testsuites", name="sftbench")
    suite = ET.SubElement(root, "testsuite", name=_text(f"sftbench.{results.name}"), timestamp=_text(results.created))
    props = ET.SubElement(suite, "properties")
    for key, value in (("run_id", results.run_id), ("config_hash", results.config_hash), ("git_sha", results.git_sha),
                       ("recommendation", results.recommendation),
                       ("hardware", hardware_text(results.hardware) if results.hardware else None),
                       ("recommendation_reliability", reliability_text(results)),
                       ("recommendation_per_benchmark", per_benchmark_text(results))):
        ET.SubElement(props, "property", name=key, value=_text(value or ""))
    tests = failures = 0
    for c in results.candidates:
        failed = c.status != "ok"
        _case(suite, c.name, "ran", f"candidate failed: {c.reason}" if failed else None, "sftbench.candidate")
        tests, failures = tests + 1, failures + failed
    for v in results.gates:
        observed = "none" if v.observed is None else f"{v.observed:.6g}"
        failure = None if v.passed else f"{v.gate}: observed {observed}; {v.message}"
        _case(suite, v.candidate, v.gate, failure, "sftbench.gate")
        tests, failures = tests + 1, failures + (not v.passed)
    for node in (root, suite):
        node.set("tests", str(tests))
        node.set("failures", str(failures))
        node.set("errors", "0")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
