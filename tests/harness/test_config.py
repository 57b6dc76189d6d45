from __future__ import annotations

import pytest

from harness.config import DEMO_CONFIG, load_config
from harness.errors import ConfigError


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_demo_config_loads_and_hash_is_stable():
    cfg = load_config()
    assert [c.name for c in cfg.candidates] == ["smollm2-135m", "minilm-l6"]
    assert cfg.recipe.tuner == "lora"
    assert cfg.hash() == load_config(DEMO_CONFIG).hash()
    assert cfg.hash() != load_config(None, ["recipe.epochs=3"]).hash()


def test_overrides_are_typed():
    cfg = load_config(None, ["recipe.epochs=1", "recipe.learning_rate=5e-3", "name=nightly"])
    assert cfg.recipe.epochs == 1 and cfg.recipe.learning_rate == 0.005 and cfg.name == "nightly"


@pytest.mark.parametrize("text, fragment", [
    ("name: x\ncandidates: [a]\nbenchmarks: [b]\nrecipe: {epoch: 1}\n", "unknown key 'epoch' in recipe"),
    ("name: x\ncandidates: [a]\nbenchmarks: [b]\nrecipe: {epochs: one}\n", "recipe.epochs must be int"),
    ("name: x\ncandidates: []\nbenchmarks: [b]\n", "no candidates"),
    ("name: x\ncandidates: [a, a]\nbenchmarks: [b]\n", "duplicate candidate names: a"),
    ("name: x\ncandidates: [a]\nbenchmarks: [b]\ngates: [{metric: acc, value: 1}]\n", "benchmark.metric"),
    ("name: x\ncandidates: [a]\nbenchmarks: [b]\nrecipe: {dropout: 1.5}\n", "recipe.dropout"),
    ("name: x\ncandidates: [a]\nbenchmarks: [b]\nrecipe: {eval_metric: sometimes}\n",
     "recipe.eval_metric must be auto, on or off (got 'sometimes')"),
    ("name: x\ncandidates: [a]\nbenchmarks: [b]\nrecipe: {monitor: accuracy}\n",
     "recipe.monitor must be loss or metric (got 'accuracy')"),
    ("name: x\ncandidates: [a]\nbenchmarks: [b]\nrecipe: {monitor: metric, eval_metric: off}\n",
     "recipe.monitor: metric needs the metric evaluated"),
    ("- just\n- a list\n", "expected a mapping"),
    ("candidates: [a]\nbenchmarks: [b]\n", "missing"),
])
def test_bad_configs_name_the_file_and_problem(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(str(path))
    assert fragment in str(err.value)
    assert err.value.exit_code == 2


def test_yaml_syntax_error_has_line(tmp_path):
    path = write(tmp_path, "name: x\ncandidates: [a\nbenchmarks: [b]\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:\d+: invalid YAML"):
        load_config(path)


def test_yaml_is_loaded_safely(tmp_path):
    path = write(tmp_path, "name: !!python/object/apply:os.system ['echo pwned']\ncandidates: [a]\nbenchmarks: [b]\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(path)


def test_on_off_settings_accept_unquoted_yaml(tmp_path):
    """YAML 1.1 reads an unquoted on/off as a boolean; the auto | on | off settings take it as the word."""
    path = write(tmp_path, "name: x\ncandidates: [a]\nbenchmarks: [b]\nrecipe: {eval_metric: off, bf16: on}\n")
    recipe = load_config(path).recipe
    assert (recipe.eval_metric, recipe.bf16) == ("off", "on")
    recipe = load_config(path, ["recipe.eval_metric=on", "recipe.monitor=metric"]).recipe
    assert (recipe.eval_metric, recipe.monitor) == ("on", "metric")
    with pytest.raises(ConfigError, match="group_by_length"):  # only those settings: a real bool stays a bool
        load_config(path, ["recipe.group_by_length=auto"])
    with pytest.raises(ConfigError, match="name must be str"):
        load_config(path, ["name=off"])
