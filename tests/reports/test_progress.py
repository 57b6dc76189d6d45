"""Progress for long steps: every scoring, generation and probing loop and the GGUF conversion report
(done, total) through an optional on_step without changing what they compute, and RichProgress turns those
calls into a bar with an ETA (a fresh one when a stage starts a second pass)."""
from __future__ import annotations

import io

import pytest
from rich.console import Console

from harness.config import SuiteRef
from harness.data.specs import load_benchmark
from harness.scoring.lm import generate
from harness.models.loading import GGUF_STAGES, convert_gguf, load_model, load_tokenizer, resolve
from harness.scoring.probes import ProbeItem, ProbeSpec, score_probe
from harness.scoring.tasks import predict, reference_losses
from reports.progress import RichProgress
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
