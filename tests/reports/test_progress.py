"""Progress for long steps: every scoring, generation and probing loop and the GGUF conversion report
(done, total) through an optional on_step without changing what they compute, and RichProgress turns those
calls into a bar with an ETA (a fresh one when a stage starts a second pass)."""
from __future__ import annotations

import io

import pytest
from rich.console import Console

from harness.config import SuiteRef
from harness.data.specs import load_benchmark
from harness.scoring.generation import generate
from harness.models.gguf import GGUF_STAGES, convert_gguf
from harness.models.loading import load_model, load_tokenizer, resolve
from harness.scoring.probes import ProbeItem, ProbeSpec, score_probe
from harness.scoring.tasks import predict, reference_losses
from reports.progress import LineProgress, RichProgress
from tests.conftest import ROOT


class Steps:
    def __init__(self):
        self.calls: list[tuple[int, int]] = []

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))

    def check(self, total: int) -> None:
        """Counts only go up, the total never changes, and the last call says the loop finished."""
        assert self.calls, "on_step was never called"
        dones = [d for d, _ in self.calls]
        assert dones == sorted(dones) and {t for _, t in self.calls} == {total} and dones[-1] == total


@pytest.fixture(scope="module")
def intents():
    spec, splits = load_benchmark(SuiteRef("support_intents", max_test=10), ROOT)
    return spec, splits["test"].examples


@pytest.fixture(scope="module")
def llama(tiny_llama):
    handle = resolve(str(tiny_llama))
    return load_model(handle), load_tokenizer(handle)


def test_prediction_loops_report_progress_and_predict_the_same(intents, llama, tiny_bert):
    spec, examples = intents
    model, tok = llama
    steps = Steps()
    with_steps = predict(spec, examples, model, tok, "causal", 96, on_step=steps)[0]
    assert with_steps == predict(spec, examples, model, tok, "causal", 96)[0]
    steps.check(len(examples) * len(spec.labels))  # one prompt-option pair per label per example
    handle = resolve(str(tiny_bert))
    encoder, bert_tok = load_model(handle, head_labels=len(spec.labels)), load_tokenizer(handle)
    steps = Steps()
    predict(spec, examples, encoder, bert_tok, "encoder", 96, on_step=steps)
    steps.check(len(examples))


def test_generation_and_reference_losses_report_progress(intents, llama):
    spec, examples = intents
    model, tok = llama
    prompts = [tok(ex.prompt)["input_ids"] for ex in examples]
    steps = Steps()
    out = generate(model, tok, prompts, 3, batch_size=4, on_step=steps)
    assert steps.calls == [(4, 10), (8, 10), (10, 10)]
    assert out == generate(model, tok, prompts, 3, batch_size=4)
    steps = Steps()
    losses = reference_losses(spec, examples, model, tok, 96, on_step=steps)
    steps.check(len(examples))
    assert losses == reference_losses(spec, examples, model, tok, 96)


def test_probes_report_progress(llama, tiny_bert):
    model, tok = llama
    items = [ProbeItem(f"The capital of country {i} is", "Paris", ("Rome", "Oslo", "Bern")) for i in range(5)]
    for kind, total in (("multiple_choice", 5 * 4), ("cloze", 5)):
        steps = Steps()
        spec = ProbeSpec(kind, "1", kind, "", "")
        assert score_probe(spec, items, model, tok, on_step=steps) == score_probe(spec, items, model, tok)
        steps.check(total)
    handle = resolve(str(tiny_bert))
    steps = Steps()
    score_probe(ProbeSpec("p", "1", "paraphrase_ranking", "", ""), items, load_model(handle), load_tokenizer(handle),
                on_step=steps)
    steps.check(5 * 5)  # anchor, paraphrase and three distractors per item


def test_gguf_conversion_reports_each_stage(tmp_path, tiny_llama, monkeypatch):
    """The GGUF reader is replaced by the tiny model (a real GGUF takes ~50 s to read); the rest of the
    conversion, its cache folder and its progress are real."""
    import transformers

    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF stand-in")
    for auto in (transformers.AutoTokenizer, transformers.AutoModelForCausalLM):
        real = auto.from_pretrained.__func__
        monkeypatch.setattr(auto, "from_pretrained",
                            classmethod(lambda cls, *a, _real=real, **k: _real(cls, tiny_llama)))
    steps = Steps()
    dest = convert_gguf(gguf, tmp_path / "cache", on_step=steps)
    assert steps.calls == [(GGUF_STAGES["tokenizer"], 100), (GGUF_STAGES["weights"], 100), (100, 100)]
    assert (dest / "model.safetensors").is_file() and (dest / "sftbench-source.json").is_file()
    again = Steps()
    assert convert_gguf(gguf, dest, on_step=again) == dest and again.calls == []  # cached: nothing to report


def test_rich_progress_bar_follows_the_steps():
    console = Console(file=io.StringIO(), width=100, color_system=None)
    with RichProgress(console) as progress:
        progress.stage("[b]cand", "scoring intents/test (228 items)")
        progress.step(2, 10)
        (task,) = progress.bar.tasks
        assert (task.description, task.completed, task.total) == ("[b]cand: scoring intents/test", 2, 10)
        progress.step(10, 10)
        progress.step(3, 12)  # a second pass in the same stage: a fresh bar and total
        (task,) = progress.bar.tasks
        assert (task.completed, task.total) == (3, 12) and task.id != 0
        progress.stage("[b]cand", "probing tuned model")
        assert progress.bar.tasks == []
    assert "[b]cand: scoring intents/test (228 items)" in console.file.getvalue()  # markup stays text


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _lines(console_file: io.StringIO) -> list[str]:
    return [line for line in console_file.getvalue().splitlines() if "/" in line]


def test_line_progress_prints_every_tenth_of_a_quick_loop_and_its_end():
    out, clock = io.StringIO(), FakeClock()
    progress = LineProgress(Console(file=out, width=200), clock=clock)
    progress.stage("m", "scoring test (40 items)")
    for done in range(1, 41):
        clock.now += 0.1  # 4 s in all: the 10% marks come long before 30 s
        progress.step(done, 40)
    lines = _lines(out)
    assert [line.split("] ")[1].split(" (")[0] for line in lines] == [f"m: scoring test {d}/40" for d in range(4, 41, 4)]
    # timed from the loop's first step (0.3 s for the next 3): 36 more at that pace
    assert lines[0].endswith("4/40 (10%), ETA 3s") and lines[-1].endswith("40/40 (100%), done in 4s")


def test_line_progress_prints_at_most_every_30_s_of_a_slow_loop_and_says_loss_and_tokens_per_second():
    out, clock = io.StringIO(), FakeClock()
    progress = LineProgress(Console(file=out, width=200), clock=clock)
    progress.stage("m", "tuning (lr 0.001)")
    for done in range(1, 1001):
        clock.now += 1.0  # 1000 s: a tenth is 100 s, so the 30 s limit decides
        progress.step(done, 1000, {"loss": 2.5 - done / 1000, "tokens": 64.0 * done, "seconds": 0.5 * done})
    lines = _lines(out)
    steps = [int(line.split("tuning ")[1].split("/")[0]) for line in lines]
    assert steps == [*range(31, 1000, 30), 1000]  # timed from the first step: 30 s later is step 31
    assert lines[0].endswith("31/1000 (3%), loss 2.4690, 128 tokens/s, ETA 15m38s")
    assert lines[-1].endswith("1000/1000 (100%), loss 1.5000, 128 tokens/s, done in 16m39s")


def test_a_second_pass_restarts_the_count_and_the_eta():
    out, clock = io.StringIO(), FakeClock()
    progress = LineProgress(Console(file=out, width=200), clock=clock)
    progress.stage("m", "bias pairs")
    for _ in range(2):  # the two sides of the pairs: each its own loop
        for done in range(1, 11):
            clock.now += 1.0
            progress.step(done, 10)
    lines = _lines(out)
    assert len(lines) == 20 and lines[10].endswith("1/10 (10%)") and lines[19].endswith("10/10 (100%), done in 9s")
