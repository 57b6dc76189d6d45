"""JUnit XML and Markdown renderers: parsed back, counted, and escaped."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from reports.junit import render_junit
from reports.markdown import escape, render_markdown
from tests.harness.test_store import make_results
from tests.reports.sample import typed

NASTY = "<script>|x"


def failing_run() -> dict:
    """Two candidates; `large` misses the 0.75 gate, `broken` failed outright with an ANSI-coloured reason."""
    results = make_results(accuracies={"small": 0.9, "large": 0.6}, gate_value=0.75, n=200)
    broken = {**results["candidates"][0], "name": "broken", "status": "failed", "benchmarks": [],
              "reason": "RunFailure: \x1b[31mloss is NaN\x00 & <worse>"}
    results["candidates"].append(broken)
    results["gates"].append({"candidate": "broken", "gate": "intents.accuracy >= 0.75", "passed": False,
                             "observed": None, "message": "fails closed: candidate failed"})
    return results


def parse(results: dict) -> ET.Element:
    root = ET.fromstring(render_junit(typed(results)))
    (suite,) = root.findall("testsuite")
    return suite


def test_junit_counts_and_names_the_failing_gate():
    results = failing_run()
    suite = parse(results)
    assert suite.get("name") == "sftbench.nightly"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["run_id"] == results["run_id"] and props["config_hash"] == "c" * 16 and props["git_sha"] == "g" * 40
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == len(cases) == 3 + 3  # a `ran` case per candidate, a case per verdict
    failed = {(c.get("classname"), c.get("name")): c.find("failure") for c in cases if c.find("failure") is not None}
    assert int(suite.get("failures")) == len(failed) == 3
    gate = failed[("large", "intents.accuracy >= 0.75")]
    observed = next(v["observed"] for v in results["gates"] if v["candidate"] == "large")
    assert f"observed {observed:.6g}" in gate.get("message") and "misses >= 0.75" in gate.get("message")
    ran = failed[("broken", "ran")].get("message")
    assert ran == "candidate failed: RunFailure: [31mloss is NaN & <worse>"  # control characters dropped
    assert ("small", "intents.accuracy >= 0.75") not in failed


def test_junit_all_pass():
    suite = parse(make_results())
    assert suite.get("failures") == "0" and suite.get("tests") == "4"


def test_hostile_names_are_escaped_in_junit():
    results = make_results(accuracies={NASTY: 0.9})
    xml = render_junit(typed(results))
    assert "<script>" not in xml and "&lt;script&gt;|x" in xml
    classnames = {c.get("classname") for c in ET.fromstring(xml).iter("testcase")}
    assert classnames == {NASTY}


def table_rows(markdown: str, which: int = 1) -> list[list[str]]:
    """Cells of every line of the `which`-th table (0: the narrow pull-request table, 1: the full leaderboard in its
    <details> block), split on pipes that are not backslash-escaped."""
    blocks = re.findall(r"(?:^\|.*\n)+", markdown, flags=re.M)
    return [re.split(r"(?<!\\)\|", line)[1:-1] for line in blocks[which].splitlines()]


def test_markdown_table_and_recommendation():
    results = failing_run()
    md = render_markdown(typed(results))
    rows = table_rows(md)
    assert len(rows) == 2 + 3 and len({len(r) for r in rows}) == 1  # header, rule, one row per candidate
    assert rows[0][1].strip() == r"intents accuracy % [95% CI]"
    by_name = {r[0].strip(): r for r in rows[2:]}
    assert by_name["small"][-1].strip() == "pass"
    assert by_name["large"][-1].strip() == r"**FAIL**: intents.accuracy &gt;= 0.75"
    assert by_name["broken"][-1].strip() == r"**FAIL**: candidate failed: RunFailure: \[31mloss is NaN &amp; &lt;worse&gt;"
    assert [r[0].strip() for r in rows[2:]] == ["small", "large", "broken"]  # best first, unscored last
    assert rows[0][2].strip() == "tie group" and by_name["small"][2].strip() == "1"
    assert by_name["large"][2].strip() == "2"  # 0.9 vs 0.6 on the same 200 items: told apart
    assert by_name["small"][4].strip().startswith("general\\_knowledge: ")
    assert "2.0M (1.0K)" in by_name["large"][5] and by_name["large"][6].strip() == "20"
    assert [c.strip() for c in rows[0][5:-1]] == ["params (trained)", "train s", "train tok/s", "ms/item", "peak MB"]
    assert "\n**Recommendation [PASS]:** small is the smallest candidate" in md
    assert "- large / intents.accuracy &gt;= 0.75: **FAIL**: value" in md
    assert "not significant at 0.05" in md  # the tie rule
    assert "bias change: not measured" in md and "bias change, flip pts" not in rows[0]


def test_markdown_bias_column():
    from tests.reports.sample import sample_results

    rows = table_rows(render_markdown(typed(sample_results())))
    col = [c.strip() for c in rows[0]].index("bias change, flip pts [95% CI]")
    by_name = {r[0].strip(): r[col].strip() for r in rows[2:]}
    assert by_name == {"minilm-l6": "-", "gpt2-small": r"intent\_bias: -0.8 [-4.1, 2.5]",
                       "smollm2-135m": r"intent\_bias: 2.5 [-1.6, 6.6]", "broken": "-"}


def test_hostile_names_are_escaped_in_markdown():
    results = make_results(accuracies={NASTY: 0.9, "fine": 0.2}, gate_value=0.5)
    results["recommendation_reason"] = f"{NASTY} wins\nsecond line"
    md = render_markdown(typed(results))
    assert "<script>" not in md and r"&lt;script&gt;\|x" in md
    for which in (0, 1):
        rows = table_rows(md, which)
        assert len({len(r) for r in rows}) == 1 and rows[2][0].strip() == r"&lt;script&gt;\|x"
    assert r"**Recommendation [PASS]:** &lt;script&gt;\|x wins second line" in md


def test_escape():
    assert escape("a|b") == r"a\|b"
    assert escape("<b>&</b>") == "&lt;b&gt;&amp;&lt;/b&gt;"
    assert escape("[x](http://e) `c` *e* _u_ \\") == r"\[x\](http://e) \`c\` \*e\* \_u\_ \\"
    assert escape("two\nlines\r\n") == "two lines"
    assert escape("\x1b[1mbold\x00") == r"\[1mbold"


def test_data_warnings_reach_every_report_escaped():
    import io

    from rich.console import Console

    from reports.html import render_html
    from reports.terminal import render
    from tests.reports.sample import sample_results

    results = sample_results() | {"warnings": [
        {"level": "warning", "path": "/data/train.jsonl", "line": 7, "message": "row 7 duplicates row 3 <script>x</script>"},
        {"level": "warning", "path": "/data/test.jsonl", "line": None, "message": "label 'refund' has 1 train row"}]}
    md = render_markdown(typed(results))
    assert "- /data/train.jsonl:7: row 7 duplicates row 3" in md and "/data/test.jsonl: label 'refund'" in md
    page = render_html(typed(results))
    assert "duplicates row 3 &lt;script&gt;x&lt;/script&gt;" in page and "<script>x" not in page
    out = io.StringIO()
    render(typed(results), Console(file=out, width=200, color_system=None))
    assert "data warning: /data/train.jsonl:7: row 7 duplicates row 3 <script>x</script>" in out.getvalue()
    assert "Data warnings" not in render_markdown(typed(sample_results()))  # nothing to say: no section


def test_full_markdown_report_has_every_section_escaped():
    from reports.markdown import render_report
    from tests.reports.sample import sample_results

    results = sample_results()
    results["candidates"][0]["name"] = "<b>|x"
    report = render_report(typed(results))
    assert report.startswith(render_markdown(typed(results)))  # summary.md is its first part
    for section in ("## Gate verdicts", "## Forgetting", "## Generalisation", "## Bias"):
        assert section in report
    forgetting = report[report.index("## Forgetting"):report.index("## Generalisation")]
    assert "&lt;b&gt;\\|x" in forgetting and "<b>" not in report
    rows = [line for line in forgetting.splitlines() if line.startswith("| &lt;b&gt;")]
    assert rows and all(line.count(" | ") == 8 for line in rows)  # nine cells: an escaped | stays in its cell


def warned(n_duplicates: int = 12) -> dict:
    """The sample run with data warnings: many duplicates of one kind, a few leaks of another, one of its own kind, and
    a label that test holds and train lacks (it bears on support_intents' scores)."""
    from tests.reports.sample import sample_results

    dup = [{"level": "warning", "path": "/d/train.jsonl", "line": 10 + i, "message": f"exact duplicate of line {i + 1} "
            "in train", "kind": "duplicate rows in train", "benchmark": "support_intents"} for i in range(n_duplicates)]
    leak = [{"level": "warning", "path": "/d/test.jsonl", "line": i + 1, "message": f"leakage: exact duplicate of "
             f"train line {i + 1}", "kind": "test rows that also appear in train", "benchmark": "support_intents"}
            for i in range(3)]
    label = {"level": "warning", "path": "/d/train.jsonl", "line": None, "message": "label 'refund' has no train rows, "
             "but 9 test row(s): no tuned model can learn it, and its test rows count against every candidate",
             "kind": "labels with no train rows", "benchmark": "support_intents", "scores": True}
    old = {"level": "warning", "path": "/d/test.jsonl", "line": 4, "message": "stored before warnings had kinds"}
    return sample_results() | {"warnings": [*dup, *leak, label, old]}


def test_long_warning_lists_are_capped_per_kind_and_warnings_txt_has_them_all():
    import io

    from rich.console import Console

    from reports.data_warnings import render_warnings
    from reports.html import render_html
    from reports.terminal import render

    results = typed(warned())
    more = "/d/train.jsonl: ... and 7 more duplicate rows in train (12 in all)"
    every = "all 17 data warnings: warnings.txt, beside results.json"
    md = render_markdown(results)
    listed = [line for line in md.splitlines() if line.startswith("- /d/")]
    assert len(listed) == 5 + 1 + 3 + 1 + 1 and listed[5] == f"- {escape(more)}"  # 3 leaks: under the cap
    assert f"- {every}" in md
    page = render_html(results)
    assert page.count("exact duplicate of line") == 5 and page.count("exact duplicate of train line") == 3
    assert f"<li>{more}</li>" in page and every in page
    out = io.StringIO()
    render(results, Console(file=out, width=300, color_system=None))
    text = out.getvalue()
    assert len(re.findall(r"data warning: /d/train.jsonl:\d+: exact", text)) == 5 and f"data warning: {more}" in text
    full = render_warnings(results).splitlines()
    assert full[0].startswith("# 17 data warnings of run") and len(full) == 18
    assert full[1:13] == [f"/d/train.jsonl:{10 + i}: exact duplicate of line {i + 1} in train" for i in range(12)]
    six = typed(warned(6))  # one over the cap: listed, never "... and 1 more"
    assert "and 1 more" not in render_markdown(six) and render_markdown(six).count("exact duplicate of line") == 6


def test_a_label_test_holds_and_train_lacks_is_shown_beside_the_scores():
    import html

    from reports.html import render_html

    results = typed(warned())
    message = ("label 'refund' has no train rows, but 9 test row(s): no tuned model can learn it, and its test rows "
               "count against every candidate")
    lines = render_markdown(results).splitlines()
    table_end = next(i for i, line in enumerate(lines) if i > 2 and not line.startswith("| "))
    assert lines[table_end + 1] == f"**Warning, support\\_intents:** {escape(message)}"  # right under the scores
    assert lines[table_end + 3].startswith("**Recommendation")
    page = render_html(results)
    board = page[page.index("<h2>Leaderboard"):page.index("<h2>Gate verdicts")]
    shown = html.escape(message)  # the quotes too
    assert f'</table></div><p class="warning"><b>Warning, support_intents:</b> {shown}</p>' in board
    plain = typed(warned() | {"warnings": [w for w in warned()["warnings"] if not w.get("scores")]})
    assert "Warning, " not in render_markdown(plain) and 'class="warning"' not in render_html(plain)
