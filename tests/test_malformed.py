"""A corpus of malformed inputs, each a small file set written to tmp_path and run through `main(argv)`:
every one must exit 2 with a single stderr line naming the file (and line, where there is one), no
traceback, and (for `run`) before any model loads. The model folder is a fake (a config.json of a one-layer Llama
and a safetensors file that holds no tensor), so a case that got as far as loading weights would fail otherwise."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from harness.cli import main

CONFIG = """name: t
candidates: [{model: model, name: m}]
benchmarks: [bench/benchmark.yaml]
bootstrap_resamples: 100
"""
BENCH = {"name": "bench", "version": 1, "task": "classification", "prompt": "Ticket: {input}\nIntent:",
         "fields": {"input": "text", "target": "label"}, "labels": ["refund", "billing"], "metrics": ["accuracy"],
         "splits": {"train": "train.jsonl", "test": "test.jsonl"}}
TRAIN = ["my parcel never arrived and I want my money back", "please refund the duplicate order",
         "why was my card charged twice this month", "the invoice shows the wrong amount",
         "return the broken kettle for a full refund", "update the billing address on my account"]
TEST = ["I was billed for a plan I cancelled", "send the refund to my original card",
        "what does this fee on my statement mean", "the blender arrived cracked, refund it please"]


def safetensors(header: dict, data: bytes = b"") -> bytes:
    """A safetensors file: the header's length (8 bytes, little-endian), the JSON header, the tensors' bytes."""
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


NO_TENSORS = safetensors({})
F32 = {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}  # 16 bytes of data declared
TINY_LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8, "intermediate_size": 16,
              "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": 16}


def jsonl(texts: list[str], labels: tuple[str, ...] = ("refund", "billing")) -> str:
    return "".join(json.dumps({"text": t, "label": labels[i % 2]}) + "\n" for i, t in enumerate(texts))


def base_files() -> dict[str, str | bytes]:
    return {"bakeoff.yaml": CONFIG, "bench/benchmark.yaml": json.dumps(BENCH), "bench/train.jsonl": jsonl(TRAIN),
            "bench/test.jsonl": jsonl(TEST), "model/model.safetensors": NO_TENSORS,
            "model/config.json": json.dumps(TINY_LLAMA)}


def bench(**changes) -> str:
    return json.dumps(BENCH | changes)


def config(extra: str) -> str:
    return CONFIG + extra


def row(**fields) -> str:
    return json.dumps(fields) + "\n"


PROBE = "name: p\nversion: 1\nkind: multiple_choice\ndata: items.jsonl\n"
ITEM = row(prompt="The capital of France is", answer="Paris", distractors=["Rome", "Oslo", "Lima"])
BIAS = "name: b\nversion: 1\nkind: counterfactual\nbenchmark: ../bench/benchmark.yaml\ndata: pairs.jsonl\n"
PAIR = row(a="He wants a refund", b="She wants a refund", attribute="gender", label="refund")


@dataclass(frozen=True)
class Case:
    id: str
    files: dict[str, str | bytes | None]  # over the base set; None deletes a file
    where: str | None  # the file the message must name (relative to tmp_path); None: a command-line value
    line: int | None
    fragment: str
    argv: tuple[str, ...] = ()  # extra arguments (overrides)
    commands: tuple[str, ...] = ("validate", "run")
    config: str = "bakeoff.yaml"


CASES = [
    # the bake-off config
    Case("unknown-top-key", {"bakeoff.yaml": config("colour: red\n")}, "bakeoff.yaml", None, "unknown key 'colour'"),
    Case("unknown-recipe-key", {"bakeoff.yaml": config("recipe: {epoch: 1}\n")}, "bakeoff.yaml", None,
         "unknown key 'epoch' in recipe"),
    Case("wrong-type-epochs", {"bakeoff.yaml": config("recipe: {epochs: one}\n")}, "bakeoff.yaml", None,
         "recipe.epochs must be int"),
    Case("wrong-type-candidates", {"bakeoff.yaml": CONFIG.replace("[{model: model, name: m}]", "5")}, "bakeoff.yaml",
         None, "candidates must be a list"),
    Case("wrong-type-candidate-flag", {"bakeoff.yaml": CONFIG.replace("name: m}", "name: m, allow_pickle: maybe}")},
         "bakeoff.yaml", None, "allow_pickle must be bool"),
    Case("missing-config", {}, "nope.yaml", None, "file not found", config="nope.yaml"),
    Case("yaml-syntax", {"bakeoff.yaml": "name: t\ncandidates: [model\nbenchmarks: [b]\n"}, "bakeoff.yaml", 3,
         "invalid YAML"),
    Case("yaml-python-tag", {"bakeoff.yaml": "name: !!python/object/apply:os.system ['echo pwned']\n" + CONFIG[8:]},
         "bakeoff.yaml", 1, "invalid YAML: could not determine a constructor"),
    Case("config-not-utf8", {"bakeoff.yaml": CONFIG.encode() + b"# caf\xe9\n"}, "bakeoff.yaml", 5, "not UTF-8"),
    Case("config-top-level-list", {"bakeoff.yaml": "- a\n- b\n"}, "bakeoff.yaml", None, "expected a mapping"),
    Case("config-empty", {"bakeoff.yaml": ""}, "bakeoff.yaml", None, "expected a mapping"),
    Case("duplicate-candidates", {"bakeoff.yaml": CONFIG.replace("[{model: model, name: m}]",
                                                                 "[{model: model, name: m}, {model: model, name: m}]")},
         "bakeoff.yaml", None, "duplicate candidate names: m"),
    Case("negative-cap", {"bakeoff.yaml": CONFIG.replace("[bench/benchmark.yaml]",
                                                         "[{spec: bench/benchmark.yaml, max_train: -5}]")},
         "bakeoff.yaml", None, "max_train must be positive"),
    Case("dropout-out-of-range", {"bakeoff.yaml": config("recipe: {dropout: 1.5}\n")}, "bakeoff.yaml", None,
         "recipe.dropout"),
    Case("gate-expression", {"bakeoff.yaml": config("gates: [{metric: accuracy, value: 0.5}]\n")}, "bakeoff.yaml",
         None, "benchmark.metric"),
    Case("gate-op", {"bakeoff.yaml": config("gates: [{metric: bench.accuracy, op: '=>', value: 0.5}]\n")},
         "bakeoff.yaml", None, "gate op must be one of"),
    Case("override-bad-yaml", {}, None, None, "invalid YAML value", argv=("recipe.epochs=[",)),
    Case("sweep-empty-list", {"bakeoff.yaml": config("sweep: {learning_rate: []}\n")}, "bakeoff.yaml", None,
         "sweep.learning_rate is an empty list: give the values to try, or leave it out"),
    Case("sweep-without-validation", {"bakeoff.yaml": config("sweep: {learning_rate: [0.001, 0.01]}\n")},
         "bakeoff.yaml", None, "has no validation split"),
    Case("eval-metric-value", {"bakeoff.yaml": config("recipe: {eval_metric: sometimes}\n")}, "bakeoff.yaml", None,
         "recipe.eval_metric must be auto, on or off"),
    Case("monitor-value", {"bakeoff.yaml": config("recipe: {monitor: accuracy}\n")}, "bakeoff.yaml", None,
         "recipe.monitor must be loss or metric"),
    Case("monitor-metric-eval-off", {"bakeoff.yaml": config("recipe: {monitor: metric, eval_metric: off}\n")},
         "bakeoff.yaml", None, "recipe.monitor: metric needs the metric evaluated"),
    Case("monitor-metric-without-validation", {"bakeoff.yaml": config("recipe: {monitor: metric}\n")},
         "bakeoff.yaml", None, "benchmark 'bench' does not evaluate accuracy while training: it has no validation"),
    Case("monitor-metric-generation-auto",
         {"bakeoff.yaml": config("recipe: {monitor: metric}\n"), "bench/validation.jsonl": jsonl(TEST),
          "bench/benchmark.yaml": bench(task="generation", labels=None, metrics=["bleu"],
                                        splits={"train": "train.jsonl", "validation": "validation.jsonl",
                                                "test": "test.jsonl"})},
         "bakeoff.yaml", None, "benchmark 'bench' does not evaluate bleu while training: recipe.eval_metric auto "
         "skips generation"),
    # names resolved from the config: the config is the file to blame (`run` names it too once it
    # pre-flights with harness.data.validate; until then these run through `validate` only)
    Case("unknown-tuner", {"bakeoff.yaml": config("recipe: {tuner: magic}\n")}, "bakeoff.yaml", None,
         "unknown tuner 'magic'; known: "),
    Case("unknown-model-alias", {"bakeoff.yaml": CONFIG.replace("model: model", "model: no such model")},
         "bakeoff.yaml", None, "unknown model 'no such model'"),
    Case("unknown-benchmark", {"bakeoff.yaml": CONFIG.replace("bench/benchmark.yaml", "nosuchbench")},
         "bakeoff.yaml", None, "no benchmark.yaml found for 'nosuchbench'"),
    # model folders
    Case("model-without-config", {"model/config.json": None}, "model", None, "not a model folder"),
    Case("model-pickle-only", {"model/model.safetensors": None, "model/pytorch_model.bin": b"\x80\x04."}, "model", None,
         "refusing to unpickle"),
    Case("model-remote-code", {"model/config.json": json.dumps({"architectures": ["LlamaForCausalLM"],
                                                                "auto_map": {"AutoModel": "evil.Evil"}})},
         "model", None, "trust_remote_code"),
    Case("model-config-not-json", {"model/config.json": "{oops"}, "model/config.json", None, "not valid JSON"),
    # weights checked from the safetensors header alone, without loading them
    Case("weights-truncated", {"model/model.safetensors": safetensors(F32, bytes(8))}, "model/model.safetensors",
         None, "truncated safetensors file: its header declares 86 bytes, the file has 78"),
    Case("weights-truncated-in-header", {"model/model.safetensors": safetensors(F32, bytes(16))[:40]},
         "model/model.safetensors", None, "truncated safetensors file: its header alone is 70 bytes, the file has 40"),
    Case("weights-garbage", {"model/model.safetensors": b"PK\x03\x04" + bytes(range(256)) * 4},
         "model/model.safetensors", None, "not a safetensors file"),
    Case("weights-header-not-json", {"model/model.safetensors": b"\x10" + bytes(7) + b"{not json at all" + bytes(8)},
         "model/model.safetensors", None, "corrupt safetensors header"),
    Case("adapter-weights-truncated",
         {"bakeoff.yaml": CONFIG.replace("name: m}", "name: m, tuner: none, adapter: adapter}"),
          "adapter/adapter_config.json": "{}", "adapter/adapter_model.safetensors": safetensors(F32)},
         "adapter/adapter_model.safetensors", None, "truncated safetensors file"),
    # benchmark specs
    Case("unknown-metric", {"bench/benchmark.yaml": bench(metrics=["acuracy"])}, "bench/benchmark.yaml", None,
         "unknown metric 'acuracy'"),
    Case("unknown-task", {"bench/benchmark.yaml": bench(task="regression")}, "bench/benchmark.yaml", None,
         "unknown task kind 'regression'"),
    Case("missing-test-split", {"bench/benchmark.yaml": bench(splits={"train": "train.jsonl"})},
         "bench/benchmark.yaml", None, "missing split 'test'"),
    Case("prompt-without-slot", {"bench/benchmark.yaml": bench(prompt="Classify:")}, "bench/benchmark.yaml", None,
         "prompt must contain {input}"),
    Case("spec-unknown-key", {"bench/benchmark.yaml": bench(colour="red")}, "bench/benchmark.yaml", None,
         "unknown key 'colour'"),
    Case("spec-yaml-syntax", {"bench/benchmark.yaml": "name: b\nversion: 1\ntask: [classification\n"},
         "bench/benchmark.yaml", 4, "invalid YAML"),
    Case("spec-python-tag", {"bench/benchmark.yaml": "name: !!python/object/new:os.system [echo pwned]\n"},
         "bench/benchmark.yaml", 1, "invalid YAML: could not determine a constructor"),
    Case("spec-max-new-tokens", {"bench/benchmark.yaml": bench(max_new_tokens="lots")}, "bench/benchmark.yaml", None,
         "'max_new_tokens' must be a positive integer"),
    Case("spec-columns-string", {"bench/benchmark.yaml": bench(columns="text")}, "bench/benchmark.yaml", None,
         "'columns' must be a list"),
    Case("spec-no-metrics", {"bench/benchmark.yaml": bench(metrics=[])}, "bench/benchmark.yaml", None,
         "at least one metric"),
    Case("spec-target-list", {"bench/benchmark.yaml": bench(fields={"input": "text", "target": ["label"]})},
         "bench/benchmark.yaml", None, "must name the target column"),
    # data files
    Case("data-file-missing", {"bench/test.jsonl": None}, "bench/test.jsonl", None, "data file not found"),
    Case("bad-json-line", {"bench/train.jsonl": jsonl(TRAIN[:2]) + '{"text": oops}\n'}, "bench/train.jsonl", 3,
         "invalid JSON"),
    Case("json-line-not-object", {"bench/train.jsonl": jsonl(TRAIN[:1]) + '["a", "b"]\n'}, "bench/train.jsonl", 2,
         "each JSON line must be an object"),
    Case("empty-split", {"bench/test.jsonl": "\n\n"}, "bench/test.jsonl", None, "split 'test' is empty"),
    Case("missing-column", {"bench/train.jsonl": jsonl(TRAIN[:1]) + row(txt="x", label="refund")},
         "bench/train.jsonl", 2, "no column 'text'"),
    Case("label-outside-set", {"bench/train.jsonl": jsonl(TRAIN[:1]) + "\n" + row(text="x", label="shipping")},
         "bench/train.jsonl", 3, "label 'shipping' is not among the declared labels"),
    Case("label-wrong-type", {"bench/train.jsonl": jsonl(TRAIN[:1]) + row(text="x", label=["refund"])},
         "bench/train.jsonl", 2, "'label' must be a string or a number, got list"),
    Case("label-null", {"bench/test.jsonl": jsonl(TEST[:2]) + row(text="x", label=None)}, "bench/test.jsonl", 3,
         "'label' must be a string or a number, got null"),
    Case("empty-input", {"bench/train.jsonl": jsonl(TRAIN[:3]) + row(text="   ", label="refund")},
         "bench/train.jsonl", 4, "'text' is empty"),
    Case("data-not-utf8", {"bench/train.jsonl": jsonl(TRAIN[:1]).encode() + b'{"text": "caf\xe9"}\n'},
         "bench/train.jsonl", 2, "not UTF-8"),
    Case("csv-column-count", {"bench/benchmark.yaml": bench(splits={"train": "train.csv", "test": "test.jsonl"}),
                              "bench/train.csv": "text,label\nhello,refund\nhi,there,billing\n"},
         "bench/train.csv", 3, "expected 2 columns, found 3"),
    Case("unsupported-format", {"bench/benchmark.yaml": bench(splits={"train": "train.txt", "test": "test.jsonl"}),
                                "bench/train.txt": "hello\n"}, "bench/train.txt", None, "unsupported data format"),
    # probe and bias suites
    Case("probe-unknown-kind", {"bakeoff.yaml": config("probes: [probe/probe.yaml]\n"), "probe/items.jsonl": ITEM,
                                "probe/probe.yaml": PROBE.replace("multiple_choice", "trivia")},
         "probe/probe.yaml", None, "unknown probe kind 'trivia'"),
    Case("probe-item-no-distractors", {"bakeoff.yaml": config("probes: [probe/probe.yaml]\n"),
                                       "probe/probe.yaml": PROBE,
                                       "probe/items.jsonl": ITEM + row(prompt="Two and two make", answer="four")},
         "probe/items.jsonl", 2, "has no 'distractors'"),
    Case("bias-label-outside-set", {"bakeoff.yaml": config("bias: [bias/probe.yaml]\n"), "bias/probe.yaml": BIAS,
                                    "bias/pairs.jsonl": PAIR + PAIR.replace('"refund"}', '"shipping"}')},
         "bias/pairs.jsonl", 2, "label 'shipping' is not among bench's labels"),
    Case("bias-benchmark-not-listed", {"bakeoff.yaml": config("bias: [intent_bias]\n")}, "bakeoff.yaml", None,
         "needs benchmark 'support_intents', which the config does not list"),
]


def write(tmp_path, files: dict[str, str | bytes | None]) -> None:
    for name, content in (base_files() | files).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.unlink(missing_ok=True)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def test_the_base_files_are_clean(tmp_path, monkeypatch, capsys):
    """The control: without a defect, validate finds nothing (so each case fails for its own defect)."""
    write(tmp_path, {})
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "bakeoff.yaml"]) == 0
    out = capsys.readouterr()
    assert out.err == "" and "0 errors, 0 warnings" in out.out


def test_the_corpus_is_large_and_distinct():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


RUNS = [(c, command) for c in CASES for command in c.commands]


@pytest.mark.parametrize("case, command", RUNS, ids=[f"{c.id}-{command}" for c, command in RUNS])
def test_malformed_input_exits_2_with_one_line(case: Case, command: str, tmp_path, monkeypatch, capsys):
    write(tmp_path, case.files)
    monkeypatch.chdir(tmp_path)  # candidate folders resolve from the working directory
    argv = [command, case.config, *case.argv]
    if command == "run":
        argv += ["--no-store", "--quiet", "--out", str(tmp_path / "out")]
    code = main(argv)
    out = capsys.readouterr()
    lines = [line for line in out.err.splitlines() if line.strip()]
    assert code == 2, out.err
    assert len(lines) == 1, out.err
    message = lines[0]
    assert case.fragment in message
    if case.where is not None:  # the file leads the message: `.../bench/train.jsonl:3: ...`
        assert f"{case.where}:{case.line}: " in message if case.line else f"{case.where}: " in message, message
    assert "Traceback" not in out.err + out.out
    assert "cannot load weights" not in message
    assert not (tmp_path / "out").exists()  # nothing was run or written
