"""The frozen types a benchmark is read into (harness/data/specs.py reads them): its spec, where each split's rows
come from, a loaded split, and one example as each model kind reads it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from harness.data.carve import Carve
from harness.data.hub import HubDataset
from harness.data.prompting import Turn
from harness.data.rows import INTEGER

TASK_KINDS = ("classification", "generation")
SPLITS = ("train", "validation", "test", "shifted")
SCORED_SPLITS = ("test", "shifted")  # the splits a run scores (and gates name: `benchmark.metric[.split]`)


EncoderText = str | tuple[str, str]  # one text, or a text pair that the tokenizer joins with its separator


@dataclass(frozen=True)
class Example:
    """One row as each model kind reads it. Built by render_example only, so that every caller (training,
    scoring, bias pairs, validate --examples) gives a kind the same input."""

    prompt: str  # what a causal LM reads: the spec's `prompt` rendered (its chat template is applied at encoding)
    encoder_text: EncoderText  # what an encoder reads: the spec's `encoder_input` rendered (default "{input}")
    target: str  # label key (classification) or the first reference (generation)
    references: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    line: int | None = field(default=None, compare=False, repr=False)  # where the row is in its file
    # what a chat template reads (harness/data/prompting.py): () is one user turn, the prompt
    turns: tuple[Turn, ...] = ()
    learn_turns: bool = False  # chat data: the assistant turns among `turns` carry the loss too

    def input_for(self, kind: str) -> EncoderText:
        """The text a model of this kind (causal | encoder) reads."""
        return self.encoder_text if kind == "encoder" else self.prompt


@dataclass(frozen=True)
class Split:
    name: str
    examples: list[Example]
    sha256: str
    path: str
    carved_from: str | None = None  # the split whose file this one was carved from (its path is that file)


@dataclass(frozen=True)
class SplitSource:
    """Where a split's rows come from: a data file, read with `quoting`, or a part carved from another split's."""

    path: str  # the data file or saved dataset folder (resolved); for a carved split, its source split's
    quoting: str = "auto"
    carve: Carve | None = None
    hub: HubDataset | None = None  # a hub dataset split (`path` is then its description)


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    version: str
    task: str
    path: str
    prompt: str
    input_fields: dict[str, str]  # template variable -> data column; `input` first when declared
    target_field: str  # always set: fields.target, or the first reference column
    reference_fields: tuple[str, ...]
    labels: dict[str, str]  # label key -> verbalised label text a causal LM is tuned to produce (a list: key = text)
    metrics: tuple[str, ...]
    main_metric: str
    splits: dict[str, SplitSource]  # split name -> its data file (resolved) and how it is read
    columns: tuple[str, ...] | None = None  # for header-less CSV/TSV
    max_new_tokens: int = 64
    description: str = ""
    stop: tuple[str, ...] = ()  # generation stops at the first of these strings
    encoder_input: tuple[str, ...] = ("{input}",)  # one template, or two for a text pair
    system: str = ""  # a system prompt: a chat template's system turn, else text before the prompt
    few_shot: int = 0  # train examples shown before each scored item's prompt (causal LMs)
    few_shot_seed: int = 0
    messages: str | None = None  # chat data: the column holding each row's {role, content} messages
    # `metrics:` entries that are evaluate modules (harness/scoring/hf_evaluate.py): carried with the spec, so every
    # process that reads it (a Ray worker too) has them registered; their names are in `metrics`
    evaluate_metrics: tuple[Any, ...] = ()

    def key_fields(self) -> dict[str, Any]:
        """The spec as unit keys read it (harness/execution/keys.py): the fields added after CACHE_VERSION 3 only
        where they are set, so the specs that do not use them keep their keys."""
        fields = asdict(self)
        for name in ("system", "few_shot", "few_shot_seed", "messages", "evaluate_metrics"):
            if fields[name] == BenchmarkSpec.__dataclass_fields__[name].default:
                fields.pop(name)
        return fields

    @property
    def input_field(self) -> str:
        """The main input column (the first declared input field): what lints and bias pairs read."""
        return next(iter(self.input_fields.values()))

    @property
    def labels_by_index(self) -> bool:
        """`labels: [negative, positive]`: an integer label cell is an index into the list (0 -> negative). Not when
        the labels themselves are integers (`labels: [1, 2]`), which cells name as they are."""
        return all(k == v for k, v in self.labels.items()) and not any(INTEGER.fullmatch(k) for k in self.labels)

    def carves(self) -> dict[str, Carve]:
        """The splits carved from another, in split order (validation, test, shifted): the order they are taken in."""
        return {name: carve for name in SPLITS if name in self.splits and (carve := self.splits[name].carve)}
