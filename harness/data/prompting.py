"""What stands around a row's prompt: the spec's `system` prompt, `few_shot` examples drawn from train, and chat data.

A causal LM with a chat template reads an Example's `turns` (system, then each shot as a user turn and its answer as
an assistant turn, then the query as a user turn); one without reads `prompt`, the same turns as plain text (the
system prompt, each shot's prompt and answer, the query, blank lines between). Chat-format data
(`{"messages": [{"role", "content"}, ...]}`, as TRL and axolotl take it) is its own conversation: the turns up to
its last assistant turn are the prompt, the last assistant turn is the target and the reference, and while training
every assistant turn carries the loss (harness/data/encode.py). Shots are drawn per item with its own seeded
generator (the spec's `few_shot_seed` and the item's position), so a capped split keeps the shots of its first items.
An encoder reads none of this: its `encoder_input` (parsed here too) is the row's text, or a text pair.
"""
from __future__ import annotations

import random
from typing import Any

from harness.errors import ConfigError, DataError

Turn = tuple[str, str]  # (role, content)
ROLES = ("system", "user", "assistant")


def compose(system: str, shots: list[tuple[str, str]], query: str) -> tuple[str, tuple[Turn, ...]]:
    """(plain text, chat turns) for a query prompt with its system prompt and (prompt, answer) shots."""
    turns: list[Turn] = [("system", system)] if system else []
    for prompt, answer in shots:
        turns += [("user", prompt), ("assistant", answer)]
    turns.append(("user", query))
    text = [system] if system else []
    text += [f"{prompt} {answer}" for prompt, answer in shots]  # " answer": as completion_ids joins it to a prompt
    return "\n\n".join([*text, query]), tuple(turns) if (system or shots) else ()


def draw_shots(pool: list[tuple[str, str]], k: int, seed: int, index: int, exclude: str) -> list[tuple[str, str]]:
    """k (prompt, answer) pairs from the train pool for item `index`, none whose prompt is the item's own."""
    eligible = [shot for shot in pool if shot[0] != exclude]
    return random.Random(f"{seed}:{index}").sample(eligible, min(k, len(eligible)))


def parse_few_shot(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise ConfigError(f"'few_shot' must be a whole number of examples, 0 or more (got {raw!r})")
    return raw


def chat_turns(value: Any, column: str, where: tuple[str, int | None]) -> tuple[Turn, ...]:
    """A chat row's messages, checked: a list of {role, content} ending in an assistant turn."""
    path, line = where
    if not isinstance(value, list) or not value:
        raise DataError(f"'{column}' must be a non-empty list of {{role, content}} messages", path, line)
    turns = []
    for i, message in enumerate(value):
        if not (isinstance(message, dict) and isinstance(message.get("content"), str)
                and message.get("role") in ROLES):
            raise DataError(f"{column}[{i}] must be {{role: {' | '.join(ROLES)}, content: text}} (got "
                            f"{str(message)[:60]})", path, line)
        turns.append((str(message["role"]), str(message["content"])))
    if turns[-1][0] != "assistant" or not turns[-1][1].strip():
        raise DataError(f"'{column}' must end with an assistant turn (the target)", path, line)
    if not any(role == "user" for role, _ in turns):
        raise DataError(f"'{column}' has no user turn", path, line)
    return tuple(turns)


def chat_prompt(turns: tuple[Turn, ...]) -> str:
    """The conversation before the answer as plain text, for a causal LM without a chat template."""
    return "".join(f"{role}: {content}\n" for role, content in turns) + "assistant:"


def parse_encoder_input(raw: Any, inputs: dict[str, str]) -> tuple[str, ...]:
    """`encoder_input`: a template, or a list of two for a text pair (NLI, QA). By default the input itself
    ({input}), or the two declared input fields as a pair, in their order."""
    if raw is None:
        if "input" in inputs or len(inputs) == 1:
            return ("{" + ("input" if "input" in inputs else next(iter(inputs))) + "}",)
        if len(inputs) == 2:
            return tuple("{" + name + "}" for name in inputs)
        raise ConfigError(f"with {len(inputs)} input fields, set encoder_input (one template, or two for a pair)")
    templates = [raw] if isinstance(raw, str) else raw
    if not (isinstance(templates, list) and len(templates) in (1, 2) and all(isinstance(t, str) for t in templates)):
        raise ConfigError("encoder_input must be a template string, or a list of two (a text pair)")
    return tuple(templates)
