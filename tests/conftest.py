"""Shared fixtures: tiny models built locally from configs with locally trained tokenizers (no hub),
paths to the real data beside the project, and a tiny bake-off config."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NoReturn

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# torch threads spin while waiting; on a shared 2-core machine that made forward passes 10x slower
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The console width the CLI assumes without a terminal (harness/cli.py: COLUMNS, else 160). A pytest-xdist worker is
# started with COLUMNS=80, which wraps the leaderboard's cells and lines that the tests read.
os.environ["COLUMNS"] = "160"

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
INTENTS = ROOT / "benchmarks" / "support_intents"


def in_ci() -> bool:
    """CI=true (GitHub Actions, GitLab and .ci/run set it): a run that is meant to have every component."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_unless_ci(reason: str) -> NoReturn:
    """Skip a test whose component (a browser, the shared data) is missing here; under CI=true fail it instead, so
    a CI run that lost a component goes red rather than green with fewer tests."""
    if in_ci():
        pytest.fail(f"{reason} [CI=true: CI must have it, so this test fails instead of skipping]", pytrace=False)
    pytest.skip(reason)


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason (fail it under CI=true)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        skip_unless_ci(f"../shared/data not found ({path}): real-data tests need the shared data folder beside the "
                       "project")
    return path


def _corpus() -> list[str]:
    return [json.loads(line)["text"] for line in (INTENTS / "train.jsonl").read_text().splitlines()]


def _tokenizer(kind: str):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if kind == "causal":
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(_corpus(), trainer)
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
        return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                       pad_token="<pad>")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(_corpus(), trainers.WordPieceTrainer(
        vocab_size=400, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def build_tiny(kind: str, folder: Path) -> Path:
    import torch
    from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = _tokenizer("encoder" if kind == "bert" else "causal")
    n = len(tok)
    if kind == "llama":
        model = LlamaForCausalLM(LlamaConfig(vocab_size=n, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                             bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=True))
    elif kind == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=n, n_embd=32, n_layer=2, n_head=4, n_positions=256,
                                           bos_token_id=1, eos_token_id=2))
    else:
        model = BertModel(BertConfig(vocab_size=n, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=4, max_position_embeddings=256))
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


# What a run writes where it is started unless told otherwise (harness/storage/store.py DEFAULT_PATH, `--out`'s
# default): no test may write there, in the working directory or in the repository.
GUARDED = (".sftbench", "runs")


def snapshot(folders: list[Path]) -> dict[str, int]:
    """Every file and folder under `folders` (GUARDED in each) with its mtime: what a test must leave as it was."""
    seen = {}
    for folder in folders:
        for name in GUARDED:
            top = folder / name
            if top.exists():
                seen.update({str(p): p.lstat().st_mtime_ns for p in [top, *top.rglob("*")]})
    return seen


def written(before: dict[str, int], after: dict[str, int]) -> list[str]:
    """Paths that appeared or changed between two snapshots."""
    return sorted(p for p, mtime in after.items() if before.get(p) != mtime)


def untracked(root: Path) -> set[str]:
    """Files in the repository that git neither tracks nor ignores (empty outside a git checkout)."""
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=all"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return {line[3:] for line in out.stdout.splitlines() if line.startswith("??")} if out.returncode == 0 else set()


@pytest.fixture(scope="session", autouse=True)
def _session_guard(tmp_path_factory):
    """Before every other fixture, of every scope: a run store for module- and session-scoped fixtures (a test's own
    is set by _private_store), so none writes .sftbench/ in the working directory. At the end of the session, no
    file may have appeared in the repository that git does not ignore."""
    before = untracked(ROOT)
    _GUARD_STATE["seen"] = snapshot(GUARDED_IN)
    patch = pytest.MonkeyPatch()
    patch.setenv("SFTBENCH_STORE", str(tmp_path_factory.mktemp("session-store") / "runs.sqlite"))
    yield
    patch.undo()
    stray = sorted(untracked(ROOT) - before)
    if stray:
        pytest.fail(f"the test session wrote into the repository: {', '.join(stray[:20])}", pytrace=False)


@pytest.fixture(autouse=True)
def _private_store(tmp_path, monkeypatch):
    """Every test gets its own run store, never the repository's .sftbench/; and fails if it, or a fixture it set
    up, wrote .sftbench/ or runs/ in the working directory or the repository."""
    before = _GUARD_STATE["seen"]  # as the last test left it (module fixtures set up since then count)
    monkeypatch.setenv("SFTBENCH_STORE", str(tmp_path / "runs.sqlite"))
    yield
    after = snapshot(GUARDED_IN)
    _GUARD_STATE["seen"] = after
    leaked = written(before, after)
    if leaked:
        pytest.fail(f"this test (or a fixture it uses) wrote outside its temporary folders: {', '.join(leaked[:10])}",
                    pytrace=False)


_GUARD_STATE: dict[str, dict[str, int]] = {}
GUARDED_IN = sorted({Path.cwd(), ROOT})  # the working directory pytest started in, and the repository


def unloadable(weights: Path) -> None:
    """Corrupt a safetensors file so that only loading finds it: the header still reads and declares the file's
    size (the pre-flight check, harness/models/loading.py check_safetensors, passes it), but one F32 tensor is
    relabelled F16, so its bytes no longer fit its shape and safetensors refuses the file when the model loads."""
    raw = weights.read_bytes()
    at = raw.index(b'"F32"', 8)
    weights.write_bytes(raw[:at] + b'"F16"' + raw[at + 5:])


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return build_tiny("llama", tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    return build_tiny("gpt2", tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny("bert", tmp_path_factory.mktemp("tiny-bert"))


# The tiny models are random 2-layer networks: a few steps on 32 rows leave them at chance on support_intents, so
# the tiny bake-off has no candidate that learned and ends with no recommendation, exit 1 (harness/scoring/chance.py: a
# candidate at chance level is never recommended). Tests of the passing path use a real model (MiniLM).
TINY_EXIT = 1


def write_tiny_config(folder: Path, tiny_llama: Path, tiny_bert: Path) -> Path:
    """A complete bake-off on the tiny models and the bundled intents benchmark, capped small."""
    cfg = folder / "bakeoff.yaml"
    cfg.write_text(f"""
name: tiny
candidates:
  - {{model: "{tiny_llama}", name: tiny-llama}}
  - {{model: "{tiny_bert}", name: tiny-bert, learning_rate: 5e-3}}
recipe: {{epochs: 1, batch_size: 8, max_length: 96, learning_rate: 1e-3, bf16: "off"}}
benchmarks:
  - {{spec: support_intents, max_train: 32, max_validation: 16, max_test: 24}}
probes:
  - {{spec: general_knowledge, max_items: 12}}
  - {{spec: paraphrase_probe, max_items: 12}}
bias:
  - intent_bias
bootstrap_resamples: 200
gates:
  - {{metric: support_intents.accuracy, op: ">=", value: 0.0}}
""")
    return cfg


@pytest.fixture()
def tiny_config(tmp_path, tiny_llama, tiny_bert) -> Path:
    """A complete bake-off on the tiny models and the bundled intents benchmark, capped small."""
    return write_tiny_config(tmp_path, tiny_llama, tiny_bert)


class TinyRun:
    """The tiny bake-off, run once for the session with its own run store and unit cache, for the tests that read a
    finished run (results.json, the reports, the kept units, what it printed) without changing it."""

    def __init__(self, folder: Path, tiny_llama: Path, tiny_bert: Path) -> None:
        import contextlib
        import io

        from harness.cli import main

        self.folder = folder
        self.config = write_tiny_config(folder, tiny_llama, tiny_bert)
        self.store = folder / "runs.sqlite"
        self.out = folder / "out"
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            self.code = main(["run", str(self.config), "--out", str(self.out), "--store", str(self.store)])
        self.stdout, self.stderr = stdout.getvalue(), stderr.getvalue()
        self.results = json.loads((self.out / "results.json").read_text())

    def again(self, *argv: str, out: Path) -> tuple[int, dict]:
        """The same bake-off with `argv` (overrides, flags) on this run's store: its units are reused."""
        from harness.cli import main

        code = main(["run", str(self.config), *argv, "--out", str(out), "--store", str(self.store)])
        return code, json.loads((out / "results.json").read_text())


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_llama, tiny_bert) -> TinyRun:
    return TinyRun(tmp_path_factory.mktemp("tiny-run"), tiny_llama, tiny_bert)


# The modules that take longest, longest first (docs/testing.md lists what each costs). pytest runs them first; under
# pytest-xdist (`make test`: two workers, `--dist loadfile`, so a file's module fixtures are computed once) the longest
# starts at once, beside everything else, rather than last.
LONGEST_FIRST = ("tests/integration/test_demo.py", "tests/integration/test_generation.py",
                 "tests/integration/test_forgetting.py", "tests/execution/test_ray_executor.py",
                 "tests/execution/test_ray_nodes.py", "tests/harness/test_cache.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        path = item.nodeid.split("::")[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: within a rank, collection order
