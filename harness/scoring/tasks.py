"""Task kinds: how a benchmark's examples become training items and how a model answers them.

classification — encoders get a fresh classification head and predict its argmax. Causal LMs are tuned
  to answer with the label's text followed by EOS (loss on the answer tokens only) and predict the
  label whose text + EOS has the highest summed log-likelihood after the prompt. Scoring the EOS too
  keeps a label that is a prefix of another ("account" / "account access") from winning by default.
generation — causal LMs only: greedy decoding after the prompt (through the chat template when the
  tokenizer has one), scored against one or more references.
lm_eval — causal LMs only: an lm-eval multiple-choice task as a benchmark (harness/data/lmeval.py). Each document's
  choices are ranked by log-likelihood as lm-eval ranks them, with its own requests and tokenisation, no chat
  template (harness/scoring/lmeval.py); tuning trains on each training document's zero-shot context and gold choice.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from harness.data.encode import (
    Encoded,
    completion_ids,
    encode_causal,
    encode_encoder,
    encoder_ids,
    fit_length,
    prompt_ids,
    uses_chat,
)
from harness.data.lmeval import TASK_KIND as LM_EVAL
from harness.data.specs import BenchmarkSpec, Example

OnStep = Callable[[int, int], None]  # (done, total): a progress bar's step; lm.py imports torch, this module not


def applicable(spec: BenchmarkSpec, kind: str, zero_shot: bool = False) -> str:
    """Empty when the model kind can do the task (untuned, with `zero_shot`), else the reason it cannot."""
    if spec.task == "generation" and kind == "encoder":
        return "an encoder-only model cannot generate text"
    if spec.task == LM_EVAL and kind == "encoder":
        return "an encoder-only model cannot rank an lm-eval task's choices by log-likelihood"
    if zero_shot and kind == "encoder":
        return "zero-shot is n/a for an encoder: its classification head is new and untrained until tuning"
    return ""


def scored_metrics(spec: BenchmarkSpec) -> tuple[str, ...]:
    """The metrics each scored split of a benchmark carries, so the names a gate may use: the spec's own, and for
    generation the loss and perplexity of the reference text (harness/execution/compute.py score_split)."""
    from harness.scoring.metrics import LOSS_METRICS

    return spec.metrics + (LOSS_METRICS if spec.task == "generation" else ())


CHEAP_METRIC_ITEMS = 1000  # recipe.eval_metric auto: validation splits up to this size get the metric while training


def metric_while_training(spec: BenchmarkSpec, n_validation: int, setting: str) -> str:
    """Empty when training evaluates the main metric on validation at every evaluation (recipe.eval_metric),
    else the reason it does not. `auto` evaluates it where it is cheap: classification (an encoder's head, or a
    causal LM scoring each label's text) on at most CHEAP_METRIC_ITEMS validation items; never generation,
    whose greedy decoding costs many forward passes per item (`on` forces it)."""
    if setting == "off":
        return "recipe.eval_metric is off"
    if n_validation == 0:
        return "it has no validation split"
    if setting == "on":
        return ""
    if spec.task == "generation":
        return "recipe.eval_metric auto skips generation benchmarks (greedy decoding is slow; set it to on)"
    if n_validation > CHEAP_METRIC_ITEMS:
        return (f"recipe.eval_metric auto skips validation splits over {CHEAP_METRIC_ITEMS} items (this one has "
                f"{n_validation}; cap it with max_validation or set eval_metric to on)")
    return ""


def training_items(spec: BenchmarkSpec, examples: list[Example], tokenizer: Any, kind: str,
                   max_length: int) -> list[Encoded]:
    if kind == "encoder":
        index = {label: i for i, label in enumerate(spec.labels)}
        return [encode_encoder(tokenizer, ex.encoder_text, index[ex.target], max_length) for ex in examples]
    if spec.task == LM_EVAL:
        from harness.scoring.lmeval import training_pair

        return [Encoded(*training_pair(tokenizer, ex, max_length)) for ex in examples]
    answer = (lambda ex: spec.labels[ex.target]) if spec.task == "classification" else (lambda ex: ex.target)
    return [encode_causal(tokenizer, ex, answer(ex), max_length) for ex in examples]


def predict(spec: BenchmarkSpec, examples: list[Example], model: Any, tokenizer: Any, kind: str,
            max_length: int, on_step: OnStep | None = None, tokens: Any = None) -> tuple[list[str], float]:
    """Predictions (label keys or generated text) and mean seconds per item. on_step(done, total) reports
    progress in the loop's own units (examples, or prompt-option pairs for a causal classifier). `tokens` (a
    harness.scoring.lm.Tokens) adds up a causal LM's tokens in the data and computed, and the path that ran."""
    start = time.perf_counter()
    if spec.task == "generation":
        preds = _generate(spec, examples, model, tokenizer, max_length, on_step, tokens)
    elif spec.task == LM_EVAL:
        from harness.scoring.lmeval import predict_choices

        preds = predict_choices(examples, model, tokenizer, on_step, tokens)
    elif kind == "encoder":
        preds = _classify_encoder(spec, examples, model, tokenizer, max_length, on_step, tokens)
    else:
        preds = _classify_causal(spec, examples, model, tokenizer, max_length, on_step, tokens)
    return preds, (time.perf_counter() - start) / max(len(examples), 1)


def _classify_encoder(spec, examples, model, tokenizer, max_length, on_step=None, tokens=None):
    import torch

    from harness.scoring.lm import ENCODER_PATH, on_device, pad

    keys = list(spec.labels)
    preds, counted = [], 0
    with torch.no_grad():
        for s in range(0, len(examples), 32):
            ids = [encoder_ids(tokenizer, ex.encoder_text, max_length) for ex in examples[s:s + 32]]
            counted += sum(map(len, ids))
            input_ids, mask = on_device(model, *pad(ids, tokenizer.pad_token_id))
            logits = model(input_ids=input_ids, attention_mask=mask).logits  # (batch, n_labels)
            preds += [keys[i] for i in logits.argmax(-1).tolist()]
            if on_step:
                on_step(len(preds), len(examples))
    if tokens is not None:  # every row's tokens run once, as the data has them
        tokens.ran(ENCODER_PATH, counted, counted)
    return preds


def label_pairs(spec: BenchmarkSpec, examples: list[Example], tokenizer: Any,
                max_length: int) -> tuple[list[list[int]], list[list[int]]]:
    """A causal classifier's scoring pairs: every example's prompt with every label's text + EOS, in label order."""
    chat = uses_chat(tokenizer)
    options = [completion_ids(tokenizer, spec.labels[k], chat) for k in spec.labels]
    contexts, conts = [], []
    for ex in examples:
        p = prompt_ids(tokenizer, ex, chat)
        for opt in options:
            contexts.append(fit_length(p, opt, max_length))
            conts.append(opt)
    return contexts, conts


def _classify_causal(spec, examples, model, tokenizer, max_length, on_step=None, tokens=None):
    return _causal_labels(spec, examples, model, tokenizer, max_length, on_step, tokens)[0]


def _causal_labels(spec: BenchmarkSpec, examples: list[Example], model: Any, tokenizer: Any, max_length: int,
                   on_step: OnStep | None = None, tokens: Any = None,
                   rows: list[Encoded] | None = None) -> tuple[list[str], float | None]:
    """A causal classifier's predictions (the label whose text + EOS is likeliest after the prompt) and, with `rows`
    (the examples' training items), their mean answer-token loss when every row is exactly its gold label's scoring
    pair (the prompt as scored, then the label's text + EOS as the only learned tokens): the scoring pass then
    computed that loss already. None when any row differs (chat-format data, truncation, a prompt with shots)."""
    from harness.scoring.ranking import best_continuations

    keys = list(spec.labels)
    contexts, conts = label_pairs(spec, examples, tokenizer, max_length)
    k = len(keys)
    gold = [i * k + keys.index(ex.target) if ex.target in keys else -1 for i, ex in enumerate(examples)]
    # only the winners are used, and with `rows` the gold labels' log-likelihoods: the rest stop at a bound
    exact = [g for g in gold if g >= 0] if rows else []
    scores = best_continuations(model, tokenizer.pad_token_id, contexts, conts, exact, on_step=on_step, tokens=tokens)
    preds = [keys[max(range(k), key=lambda j: scores[i * k + j][0])] for i in range(len(examples))]
    if rows is None or len(rows) != len(examples):
        return preds, None
    if any(g < 0 or row.input_ids != contexts[g] + conts[g] or row.labels != [-100] * len(contexts[g]) + conts[g]
           for g, row in zip(gold, rows)):
        return preds, None
    return preds, -sum(scores[g][0] for g in gold) / sum(scores[g][1] for g in gold)


def validation_answers(spec: BenchmarkSpec, examples: list[Example], model: Any, tokenizer: Any, kind: str,
                       max_length: int, rows: list[Encoded], on_step: OnStep | None = None) -> tuple[list[str],
                                                                                                  float | None]:
    """Predictions on a validation split while training, and the split's validation loss (the mean loss of `rows`,
    its training items, on their answer tokens) when the same pass computed it: a causal classifier scores every
    label's text + EOS after the prompt, the gold label's among them, which is exactly a row's learned tokens (the
    training loop's validation loss then need not run the rows again). None where it did not (an encoder's head, a
    row that is not its gold label's scoring pair): the caller computes the loss itself."""
    if spec.task == "classification" and kind != "encoder":
        return _causal_labels(spec, examples, model, tokenizer, max_length, on_step, rows=rows)
    return predict(spec, examples, model, tokenizer, kind, max_length, on_step=on_step)[0], None


def _generate(spec, examples, model, tokenizer, max_length, on_step=None, tokens=None):
    from harness.scoring.generation import generate

    chat = uses_chat(tokenizer)
    prompts = [prompt_ids(tokenizer, ex, chat)[-max_length:] for ex in examples]
    return generate(model, tokenizer, prompts, spec.max_new_tokens, stop=spec.stop, on_step=on_step, tokens=tokens)


def reference_losses(spec: BenchmarkSpec, examples: list[Example], model: Any, tokenizer: Any,
                     max_length: int, on_step: OnStep | None = None,
                     tokens: Any = None) -> tuple[list[float], list[int]]:
    """Per-item mean token loss (nats) of the first reference after the prompt, and its token count;
    on_step(items done, total) per batch; `tokens` as in predict."""
    from harness.scoring.lm import continuation_logprobs

    chat = uses_chat(tokenizer)
    conts = [completion_ids(tokenizer, ex.references[0], chat)[: max_length - 1] for ex in examples]
    contexts = [fit_length(prompt_ids(tokenizer, ex, chat), c, max_length) for ex, c in zip(examples, conts)]
    scored = continuation_logprobs(model, tokenizer.pad_token_id, contexts, conts, on_step=on_step, tokens=tokens)
    return [-total / count for total, count in scored], [count for _, count in scored]
