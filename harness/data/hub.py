"""A benchmark split from a Hugging Face Hub dataset: `splits: {train: {dataset: {path, name, split, revision}}}`.

Read with `datasets.load_dataset` (the optional `datasets` extra: it is heavy, see docs/benchmarks.md), from its cache
when offline. The split's hash is of its rows as read (their JSON), so it follows the content, not the hub's name for
it. Offline with the dataset not cached, or `datasets` not installed, it is one error line naming the benchmark, the
key and the cause, as a hub model's is.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from harness.data.files import Table
from harness.errors import ConfigError
from harness.models.hub import hub_failure  # the causes a hub model's download failure is told in

HUB_KEYS = ("path", "name", "split", "revision")
TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class HubDataset:
    path: str  # the hub id (`glue`, `stanfordnlp/imdb`)
    split: str  # the dataset's split name (`train`, `validation`, `train[:1000]`)
    name: str | None = None  # the configuration (`sst2`)
    revision: str | None = None

    def describe(self) -> str:
        config = f" ({self.name})" if self.name else ""
        return f"hub dataset '{self.path}'{config} split {self.split}"


def parse_hub(split: str, raw: Any) -> HubDataset:
    if not isinstance(raw, dict) or not isinstance(raw.get("path"), str):
        raise ConfigError(f"splits.{split}.dataset must be {{path: hub id, name, split, revision}}")
    unknown = sorted(set(raw) - set(HUB_KEYS))
    if unknown:
        raise ConfigError(f"splits.{split}.dataset: unknown key '{unknown[0]}'; known: {', '.join(HUB_KEYS)}")
    bad = next((k for k in ("name", "split", "revision") if k in raw and not isinstance(raw[k], str)), None)
    if bad:
        raise ConfigError(f"splits.{split}.dataset.{bad} must be a text")
    return HubDataset(raw["path"], raw.get("split", split), raw.get("name"), raw.get("revision"))


def offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in TRUE for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def hub_rows(hub: HubDataset, benchmark: str, split: str, spec_path: str) -> tuple[Table, str]:
    """The rows of a hub dataset split and the sha256 of their content."""
    where = f"benchmark '{benchmark}' splits.{split}.dataset: cannot read {hub.describe()}"
    try:
        import datasets
    except ImportError:
        cause = " (offline, and datasets is not installed)" if offline() else ""
        raise ConfigError(f"{where}: it needs the datasets package{cause}: pip install 'sftbench[datasets]', or save "
                          "it with save_to_disk and name the folder", spec_path) from None
    try:
        data = datasets.load_dataset(hub.path, hub.name, split=hub.split, revision=hub.revision)
    except Exception as err:  # datasets raises many kinds (ConnectionError, DatasetNotFoundError, ValueError)
        cause = ("offline (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set) and not in the datasets cache; run once "
                 "online, or save it with save_to_disk and name the folder" if offline() else
                 hub_failure(err, hub.path, hub.revision)[:300])
        raise ConfigError(f"{where}: {cause}", spec_path) from None
    rows: list[dict[str, Any]] = [dict(row) for row in data]
    blob = json.dumps(rows, sort_keys=True, default=str, ensure_ascii=False)
    return Table([(None, row) for row in rows]), hashlib.sha256(blob.encode()).hexdigest()
