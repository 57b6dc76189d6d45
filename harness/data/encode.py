"""Turning examples into token ids, the same way for training and for scoring.

Causal LMs are tuned as instruction followers: the input goes through the model's chat template when
it has one (plain text otherwise), and the completion is the answer followed by EOS. Tokenising prompt
and completion separately and concatenating the ids keeps the boundary identical in training and in
log-likelihood scoring.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int] | int  # per-token targets (-100 = no loss) for causal LMs, a class index for encoders


def uses_chat(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def prompt_text(tokenizer: Any, text: str, chat: bool) -> str:
    """The prompt as the causal LM reads it: through its chat template (a user turn, then the assistant's turn
    opened) when it has one, else as it is."""
    if chat:
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                             tokenize=False)
    return text


def prompt_ids(tokenizer: Any, text: str, chat: bool) -> list[int]:
    if chat:  # the template already holds the special tokens it wants
        return tokenizer(prompt_text(tokenizer, text, chat), add_special_tokens=False)["input_ids"]
    return tokenizer(text)["input_ids"]


def completion_ids(tokenizer: Any, answer: str, chat: bool) -> list[int]:
    # A plain-text prompt ends before the answer's word boundary, so the answer starts with a space.
    ids = tokenizer(answer if chat else " " + answer, add_special_tokens=False)["input_ids"]
    return ids + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])


def fit_length(prompt: list[int], completion: list[int], max_length: int) -> list[int]:
    """Drop prompt tokens from the left so the completion always survives truncation."""
    room = max(1, max_length - len(completion))
    return prompt[-room:]


def encode_causal(tokenizer: Any, text: str, answer: str, max_length: int) -> Encoded:
    chat = uses_chat(tokenizer)
    completion = completion_ids(tokenizer, answer, chat)[:max_length - 1]
    prompt = fit_length(prompt_ids(tokenizer, text, chat), completion, max_length)
    return Encoded(prompt + completion, [-100] * len(prompt) + completion)


def encoder_ids(tokenizer: Any, text: str | tuple[str, str], max_length: int) -> list[int]:
    """An encoder's input ids: one text, or a text pair joined the tokenizer's way ([CLS] a [SEP] b [SEP]),
    the longer side truncated first."""
    pair = (text,) if isinstance(text, str) else text
    return tokenizer(*pair, truncation=True, max_length=max_length)["input_ids"]


def encode_encoder(tokenizer: Any, text: str | tuple[str, str], label_index: int, max_length: int) -> Encoded:
    return Encoded(encoder_ids(tokenizer, text, max_length), label_index)
