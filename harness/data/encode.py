"""Turning examples into token ids, the same way for training and for scoring.

Causal LMs are tuned as instruction followers: the input goes through the model's chat template when
it has one (plain text otherwise), and the completion is the answer followed by EOS. Tokenising prompt
and completion separately and concatenating the ids keeps the boundary identical in training and in
log-likelihood scoring.

An example's `turns` (a system prompt, few-shot turns, a chat conversation: harness/data/prompting.py) go through
the template as they are; a template that refuses a system turn (Gemma's raises) gets the system prompt at the head of
the first user turn instead. In chat data (`learn_turns`) the assistant turns before the last carry the loss too: the
prompt text is cut where their contents stand, each piece tokenised on its own, so the labels are -100 on exactly the
tokens that are not an assistant's (the last turn's EOS, as in every completion, is learned).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.data.specs import Example
from harness.errors import DataError

Prompt = Example | str  # an example, or a bare prompt text (one user turn)


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int] | int  # per-token targets (-100 = no loss) for causal LMs, a class index for encoders


def uses_chat(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def prompt_text(tokenizer: Any, prompt: Prompt, chat: bool) -> str:
    """The prompt as the causal LM reads it: through its chat template (the example's turns, or one user turn, then
    the assistant's turn opened) when it has one, else as it is."""
    if isinstance(prompt, str):
        prompt = Example(prompt=prompt, encoder_text=prompt, target="")
    if not chat:
        return prompt.prompt
    turns = [{"role": role, "content": content} for role, content in prompt.turns or (("user", prompt.prompt),)]
    try:
        return str(tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False))
    except Exception:  # jinja2's TemplateError (raise_exception in the template): no system role
        if turns[0]["role"] != "system" or len(turns) < 2:
            raise
        first = {"role": turns[1]["role"], "content": f"{turns[0]['content']}\n\n{turns[1]['content']}"}
        return str(tokenizer.apply_chat_template([first, *turns[2:]], add_generation_prompt=True, tokenize=False))


def prompt_tokens(tokenizer: Any, prompt: Prompt, chat: bool) -> tuple[list[int], list[int]]:
    """The prompt's ids and their labels: -100, except on earlier assistant turns of chat data."""
    text = prompt_text(tokenizer, prompt, chat)
    pieces: list[tuple[str, bool]] = []
    cursor = 0  # every turn's content is found in order, so an assistant's words quoted by a user are not taken
    for role, content in prompt.turns if isinstance(prompt, Example) and prompt.learn_turns else ():
        at = text.find(content.strip(), cursor)
        if at < 0 and role == "assistant":
            raise DataError(f"the chat template changes the assistant turn {content[:40]!r}: its loss cannot be placed")
        if at < 0:
            continue  # a system prompt folded into the user turn, a template that rewrites a turn
        if role == "assistant":
            pieces += [(text[len("".join(p for p, _ in pieces)):at], False), (text[at:at + len(content.strip())], True)]
        cursor = at + len(content.strip())
    pieces.append((text[len("".join(p for p, _ in pieces)):], False))
    ids: list[int] = []
    labels: list[int] = []
    for i, (piece, learn) in enumerate(pieces):
        if not piece:
            continue
        # the template already holds the special tokens it wants; plain text gets the tokenizer's (BOS) once
        part = tokenizer(piece, add_special_tokens=not chat and i == 0)["input_ids"]
        ids += part
        labels += part if learn else [-100] * len(part)
    return ids, labels


def prompt_ids(tokenizer: Any, prompt: Prompt, chat: bool) -> list[int]:
    return prompt_tokens(tokenizer, prompt, chat)[0]


def completion_ids(tokenizer: Any, answer: str, chat: bool) -> list[int]:
    # A plain-text prompt ends before the answer's word boundary, so the answer starts with a space.
    ids = tokenizer(answer if chat else " " + answer, add_special_tokens=False)["input_ids"]
    return ids + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])


def fit_length(prompt: list[int], completion: list[int], max_length: int) -> list[int]:
    """Drop prompt tokens from the left so the completion always survives truncation."""
    room = max(1, max_length - len(completion))
    return prompt[-room:]


def encode_causal(tokenizer: Any, prompt: Prompt, answer: str, max_length: int) -> Encoded:
    chat = uses_chat(tokenizer)
    completion = completion_ids(tokenizer, answer, chat)[:max_length - 1]
    ids, labels = prompt_tokens(tokenizer, prompt, chat)
    keep = len(fit_length(ids, completion, max_length))
    return Encoded(ids[len(ids) - keep:] + completion, labels[len(labels) - keep:] + completion)


def encoder_ids(tokenizer: Any, text: str | tuple[str, str], max_length: int) -> list[int]:
    """An encoder's input ids: one text, or a text pair joined the tokenizer's way ([CLS] a [SEP] b [SEP]),
    the longer side truncated first."""
    pair = (text,) if isinstance(text, str) else text
    return tokenizer(*pair, truncation=True, max_length=max_length)["input_ids"]


def encode_encoder(tokenizer: Any, text: str | tuple[str, str], label_index: int, max_length: int) -> Encoded:
    return Encoded(encoder_ids(tokenizer, text, max_length), label_index)
