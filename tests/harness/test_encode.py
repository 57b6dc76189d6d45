"""Token ids for causal LMs, with and without a chat template: the prompt is the rendered template (or the plain
text with BOS), the completion the answer plus EOS (a leading space only after plain text), loss on the completion
only, and truncation drops prompt tokens from the left."""
from __future__ import annotations

import pytest

from harness.data.encode import completion_ids, encode_causal, prompt_ids, uses_chat
from tests.conftest import _tokenizer

# A template written for this test: each message as <|role|>content and a newline, then the assistant's turn.
CHAT = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}")
TEXT = "Where is my parcel? It was due on Monday."


@pytest.fixture(scope="module")
def tokenizers():
    plain, chat = _tokenizer("causal"), _tokenizer("causal")
    chat.chat_template = CHAT
    return plain, chat


def ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_plain_prompt_and_completion(tokenizers):
    plain, _ = tokenizers
    assert not uses_chat(plain)
    assert prompt_ids(plain, TEXT, chat=False) == [plain.bos_token_id, *ids(plain, TEXT)]
    assert completion_ids(plain, "refund", chat=False) == [*ids(plain, " refund"), plain.eos_token_id]


def test_chat_prompt_is_the_rendered_template_and_the_answer_has_no_leading_space(tokenizers):
    _, chat = tokenizers
    assert uses_chat(chat)
    rendered = f"<|user|>{TEXT}\n<|assistant|>"  # the template by hand: no BOS, the template has none
    assert prompt_ids(chat, TEXT, chat=True) == ids(chat, rendered)
    assert completion_ids(chat, "refund", chat=True) == [*ids(chat, "refund"), chat.eos_token_id]
    assert ids(chat, "refund") != ids(chat, " refund")  # the space would be a different token


def test_encode_causal_with_a_chat_template(tokenizers):
    _, chat = tokenizers
    prompt, answer = ids(chat, f"<|user|>{TEXT}\n<|assistant|>"), [*ids(chat, "account access"), chat.eos_token_id]
    enc = encode_causal(chat, TEXT, "account access", max_length=256)
    assert enc.input_ids == prompt + answer
    assert enc.labels == [-100] * len(prompt) + answer  # loss on the answer and its EOS only
    short = encode_causal(chat, TEXT, "account access", max_length=len(answer) + 6)
    assert short.input_ids == prompt[-6:] + answer  # the start of the prompt goes, the template's end stays
    assert short.labels == [-100] * 6 + answer


def test_encode_causal_without_a_chat_template(tokenizers):
    plain, _ = tokenizers
    prompt, answer = [plain.bos_token_id, *ids(plain, TEXT)], [*ids(plain, " billing"), plain.eos_token_id]
    enc = encode_causal(plain, TEXT, "billing", max_length=256)
    assert (enc.input_ids, enc.labels) == (prompt + answer, [-100] * len(prompt) + answer)
    short = encode_causal(plain, TEXT, "billing", max_length=len(answer) + 1)
    assert short.input_ids == prompt[-1:] + answer  # at least one prompt token before the answer
