"""Devices and memory options (issue 16): device and precision resolution, gradient accumulation, gradient
checkpointing, QLoRA's config errors, and the unit keys of a placement. Every device-dependent test runs on each
device present (DEVICES): on a CUDA machine the same tests run there, elsewhere they skip with the reason."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from harness.cli import main
from harness.config import RecipeConfig, load_config
from harness.errors import ConfigError
from harness.execution.keys import tune_key
from harness.models.device import Placement, resolve
from harness.models.loading import resolve as resolve_model
from harness.scoring.tasks import predict
from harness.training.loop import accumulate, checkpointing, fit, targets_in
from tests.harness.test_train import tiny_model, trainable

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")),
    pytest.param("mps", marks=pytest.mark.skipif(not (torch.backends.mps.is_available()), reason="no MPS device here")),
]
EXACT = RecipeConfig(epochs=1, batch_size=8, bf16="off", seed=0, max_length=96, options={"dropout": 0.0},
                     warmup_ratio=0.0)


def no_dropout(model):
    """Dropout draws its masks per forward: micro-batches draw other masks than one batch (the arithmetic differs)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


def test_auto_picks_what_is_present_and_a_missing_device_is_one_config_error():
    here = resolve("auto", "off")
    assert here.kind == ("cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available()
                         else "cpu")
    assert resolve("cpu", "off") == Placement("cpu", "fp32") and resolve("cpu", "on").precision == "bf16"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="recipe.device is cuda:1, but torch sees no CUDA device"):
            resolve("cuda:1", "auto")
        # planned for a Ray GPU worker from a driver without one: CUDA in bf16 unless bf16 is off
        assert resolve("auto", "auto", gpu_planned=True) == Placement("cuda:0", "bf16")
        assert resolve("cuda", "off", gpu_planned=True).precision == "fp32"
    with pytest.raises(ConfigError, match="not a device"):
        resolve("tpu", "auto")
    with pytest.raises(ConfigError, match="recipe.device must be auto, cpu, cuda, cuda:N or mps"):
        RecipeConfig(device="gpu")
    with pytest.raises(ConfigError, match="grad_accum must be at least 1"):
        RecipeConfig(grad_accum=0)


def test_weights_load_in_the_training_dtype_only_where_the_base_stays_frozen_on_an_accelerator():
    from tuners import load_all

    frozen = {name: load_all().get(name).frozen_base for name in ("lora", "qlora", "ia3", "full", "freeze")}
    gpu, cpu = Placement("cuda:0", "bf16"), Placement("cpu", "bf16")
    assert gpu.weights_dtype(frozen["lora"]) is torch.bfloat16 and gpu.weights_dtype(frozen["qlora"]) is torch.bfloat16
    assert gpu.weights_dtype(frozen["full"]) is torch.float32 and gpu.weights_dtype(frozen["freeze"]) is torch.float32
    assert Placement("cuda:0", "fp16").weights_dtype(frozen["ia3"]) is torch.float16
    assert cpu.weights_dtype(frozen["lora"]) is torch.float32  # the CPU keeps fp32 weights and casts per fit


def test_cpu_keys_are_those_without_devices_and_an_accelerator_has_its_own(tiny_llama):
    from harness.config import SuiteRef
    from harness.data.specs import load_benchmark
    from tests.conftest import ROOT

    handle = resolve_model(str(tiny_llama))
    spec, splits = load_benchmark(SuiteRef("support_intents", max_train=8, max_validation=4), ROOT)
    recipe = RecipeConfig()
    fields = recipe.key_fields()
    assert not {"device", "grad_accum", "gradient_checkpointing"} & set(fields)  # a plain recipe's keys as before
    cpu = tune_key(handle, spec, recipe, splits, 1e-3, 1)
    assert tune_key(handle, spec, dataclasses.replace(recipe, device="cpu"), splits, 1e-3, 1) == cpu
    assert tune_key(handle, spec, recipe, splits, 1e-3, 1, Placement("cuda:0", "bf16")) != cpu
    assert tune_key(handle, spec, dataclasses.replace(recipe, grad_accum=2), splits, 1e-3, 1) != cpu


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["llama", "bert"])
def test_grad_accum_gives_the_one_big_batch_update(tiny_llama, tiny_bert, kind, device):
    """batch 2 x 4 micro-batches against one batch of 8: the same batches in the same order, the same losses and
    weights up to the summation order of the micro-batches (fp32 on every device, so the tolerance is tight)."""
    folder = tiny_llama if kind == "llama" else tiny_bert
    placement = resolve(device, "off")
    one = EXACT if kind == "llama" else dataclasses.replace(EXACT, tuner="full", options=None)
    model, items, val, pad_id = tiny_model(folder, one, rows=16)
    big = fit(no_dropout(model).to(placement.device), items, val, one, 1e-2, pad_id, placement=placement)
    big_weights = trainable(model)
    accumulated = dataclasses.replace(one, batch_size=2, grad_accum=4)
    model, items, val, pad_id = tiny_model(folder, accumulated, rows=16)
    small = fit(no_dropout(model).to(placement.device), items, val, accumulated, 1e-2, pad_id, placement=placement)
    assert small.steps == big.steps == 2
    torch.testing.assert_close(small.train_loss, big.train_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(small.val_loss, big.val_loss, rtol=1e-5, atol=1e-6)
    if kind == "llama":  # LoRA; under full tuning Adam's first step is about lr * sign(grad) for every weight, so a
        # gradient of 1e-12 against -1e-12 (summation order, thread timing) moves a weight by 2 lr: the gradients
        # are compared instead (test_accumulated_gradient_is_the_mean_over_every_target_of_the_batch)
        for name, value in trainable(model).items():
            torch.testing.assert_close(value, big_weights[name], rtol=1e-4, atol=1e-6,
                                       msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("kind", ["llama", "bert"])
def test_accumulated_gradient_is_the_mean_over_every_target_of_the_batch(tiny_llama, tiny_bert, kind):
    """Micro-batches of unequal answer lengths: each is weighted by its tokens, not averaged per micro-batch (a
    classifier's by its examples); a fully tuned encoder's gradients too."""
    folder, recipe = (tiny_llama, EXACT) if kind == "llama" else (tiny_bert, dataclasses.replace(EXACT, tuner="full", options=None))
    model, items, _, pad_id = tiny_model(folder, recipe, rows=6)
    no_dropout(model)
    cpu = Placement()
    accumulate(model, items, pad_id, len(items), cpu)
    whole = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    loss_sum, n = accumulate(model, items, pad_id, 1, cpu)
    assert n == targets_in(items) and (kind == "bert" or len({targets_in([it]) for it in items}) > 1)
    for name, p in model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.grad, whole[name], rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("device", DEVICES)
def test_gradient_checkpointing_gives_the_same_gradients(tiny_llama, device):
    placement = resolve(device, "off")
    model, items, _, pad_id = tiny_model(tiny_llama, EXACT, rows=4)
    model.to(placement.device).train()
    accumulate(model, items, pad_id, 4, placement)
    plain = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    checkpointing(model, True)
    assert model.get_base_model().is_activation_checkpointing
    accumulate(model, items, pad_id, 4, placement)
    checkpointing(model, False)
    assert not model.get_base_model().is_activation_checkpointing
    for name, grad in plain.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("device", DEVICES)
def test_training_and_scoring_run_on_the_device(tiny_llama, device):
    """fit and predict on each device present: the model stays there, and its predictions agree with the same
    weights scored on the CPU (bf16 noise allowed on an accelerator)."""
    from harness.config import SuiteRef
    from harness.data.specs import load_benchmark
    from harness.models.loading import load_tokenizer
    from tests.conftest import ROOT

    placement = resolve(device, "auto")
    recipe = dataclasses.replace(EXACT, device=device, gradient_checkpointing=True)
    model, items, val, pad_id = tiny_model(tiny_llama, recipe, rows=8)
    model.to(placement.device)
    result = fit(model, items, val, recipe, 1e-2, pad_id, placement=placement)
    assert result.steps == 1 and all(p.device.type == placement.kind for p in model.parameters())
    spec, splits = load_benchmark(SuiteRef("support_intents", max_test=8), ROOT)
    tok = load_tokenizer(resolve_model(str(tiny_llama)))
    with placement.autocast():
        here, _ = predict(spec, splits["test"].examples, model, tok, "causal", 96)
    model.to("cpu")
    on_cpu, _ = predict(spec, splits["test"].examples, model, tok, "causal", 96)
    agree = sum(a == b for a, b in zip(here, on_cpu)) / len(here)
    assert agree == 1.0 if placement.kind == "cpu" else agree >= 0.75


def test_asking_for_a_missing_gpu_or_qlora_off_cuda_is_exit_2_with_one_line(tiny_config, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the error is for machines without it")
    assert main(["run", str(tiny_config), "--out", str(tiny_config.parent / "o"), "recipe.device=cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "recipe.device is cuda" in err[0] and "no CUDA device" in err[0]
    assert main(["run", str(tiny_config), "--out", str(tiny_config.parent / "o"), "recipe.tuner=qlora"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "recipe.tuner qlora needs a CUDA GPU" in err[0]
    assert not (tiny_config.parent / "o" / "results.json").exists()


def test_a_placement_goes_into_the_plan_and_off_a_cpu_into_its_keys(tiny_config):
    from harness.execution.plan import plan
    from harness.execution.compute import QUIET
    from harness.execution.suites import load_suites, resolve_all

    cfg = load_config(tiny_config)
    suites, handles = load_suites(cfg), resolve_all(cfg, QUIET)
    cpu = plan(cfg, suites, handles, resolve("cpu", "off"))
    gpu = plan(cfg, suites, handles, {"tune": Placement("cuda:0", "bf16"), "score": Placement(),
                                      "probe": Placement()})
    assert [u.id for u in cpu.units] == [u.id for u in gpu.units]
    for a, b in zip(cpu.units, gpu.units):
        assert b.placement.kind == ("cuda" if b.kind == "tune" else "cpu")
        assert (a.key == b.key) == (b.kind != "tune"), a.id  # base-model scoring keys stay; tune keys differ


@pytest.mark.skipif(not torch.cuda.is_available(), reason="QLoRA needs a CUDA device; there is none here")
def test_qlora_trains_lora_on_a_4bit_base_on_cuda(tiny_llama):
    pytest.importorskip("bitsandbytes", reason="the qlora extra (bitsandbytes) is not installed")
    from harness.config import SuiteRef
    from harness.data.specs import load_benchmark
    from harness.execution.workspace import Workspace
    from harness.scoring.tasks import training_items
    from tests.conftest import ROOT

    recipe = dataclasses.replace(EXACT, tuner="qlora", device="cuda", bf16="auto")  # LoRA's options: qlora's too
    spec, splits = load_benchmark(SuiteRef("support_intents", max_train=16, max_validation=8), ROOT)
    ws = Workspace(resolve_model(str(tiny_llama)), spec, recipe, placement=resolve("cuda", "auto"))
    model = ws.fresh()
    assert any(type(m).__name__ == "Linear4bit" for m in model.modules())
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    items = training_items(spec, splits["train"].examples, ws.tokenizer, "causal", 96)
    result = fit(model, items, [], recipe, 1e-3, ws.tokenizer.pad_token_id, placement=ws.placement)
    assert result.steps == 2 and all(torch.isfinite(torch.tensor(result.train_loss)))
