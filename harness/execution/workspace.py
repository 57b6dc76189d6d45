"""A loaded model for the units of one candidate on one benchmark under one training seed, with a lifecycle of
its own: `setup` for a unit's group (nothing loads), `use` before each unit, `release` at the end (the shape of
torchtune's recipe interface). Executors call these three and never set its state.

The model loads only when a unit must actually be computed, so re-running a finished bake-off loads nothing.
The local executor keeps one workspace alive across a group's units (the base model loads once for its probes,
its tuning and its scoring, as a serial loop would); a Ray worker keeps its last one for the next unit of the same
group (harness/execution/runner.py). A tuned setting is reattached to the loaded base by preparing the tuner with
the same seed and loading its trainable tensors, which gives the same weights as the model that was just trained.

What the model holds is one state (`holding`): nothing, the base as loaded, the tuner-prepared model in its
initial state, a setting being trained, a tuned setting (by its unit key), or the candidate's own peft adapter.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.data.specs import BenchmarkSpec
from harness.errors import RunFailure
from harness.models.device import Placement, check_here
from harness.models.loading import ModelHandle, load_model, load_tokenizer

if TYPE_CHECKING:
    from harness.execution.plan import Unit

BASE, INITIAL, TRAINING, ADAPTER = "<base>", "<initial>", "<training>", "<adapter>"  # else: a tuned setting's key


class Workspace:
    def __init__(self, handle: ModelHandle, spec: BenchmarkSpec, recipe: Any, snapshot: bool = False,
                 group: Any = None, placement: Placement | None = None):
        self.handle, self.spec, self.recipe = handle, spec, recipe
        self.group = group  # the units it serves (Unit.group): another group opens its own
        self.placement = placement or Placement()  # the device the model is on, and its precision
        self.snapshot = snapshot  # keep the prepared initial state, so several settings each start from it
        self.model: Any = None
        self.holding: str | None = None  # what `model` is (BASE, INITIAL, TRAINING, ADAPTER or a tuned key)
        self._tokenizer: Any = None
        self.initial: dict[str, Any] | None = None
        self.memos: dict[str, Any] = {}  # per-workspace values several units share (tokenised training rows)

    # the lifecycle: the executors' side

    @classmethod
    def setup(cls, unit: Unit, spec: BenchmarkSpec, handle: ModelHandle) -> Workspace:
        """The workspace for `unit`'s group, on the device it was planned for as this process sees it. Nothing
        loads until a unit must be computed."""
        return cls(handle, spec, unit.recipe, group=unit.group, placement=check_here(unit.placement))

    def serves(self, unit: Unit) -> bool:
        return self.group == unit.group

    def use(self, unit: Unit) -> Workspace:
        """Before `unit` runs here: a tune unit followed by other settings has the initial state kept."""
        if not self.serves(unit):
            raise RunFailure(f"unit {unit.id} is not of this workspace's group")
        self.snapshot = self.snapshot or unit.snapshot
        return self

    def release(self) -> None:
        self.model, self._tokenizer, self.initial, self.memos, self.holding = None, None, None, {}, None

    # the model: the units' side (harness/execution/compute.py)

    @property
    def prepared(self) -> bool:
        """The tuner has wrapped the model (an initial, training or tuned state)."""
        return self.holding not in (None, BASE, ADAPTER)

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.handle)
        return self._tokenizer

    def base(self) -> Any:
        """The base model as loaded (a fresh classifier head, seeded, for an encoder on a classification task)."""
        if self.holding != BASE:
            import torch

            self.model, self.holding, self.initial = None, None, None
            torch.manual_seed(self.recipe.seed)  # a fresh classifier head is initialised at load time
            encoder_head = self.handle.kind == "encoder" and self.spec.task == "classification"
            head = len(self.spec.labels) if encoder_head else None
            tuner = self._tuner()
            options = tuner.load_options(self.placement) if tuner.load_options else {}
            model = load_model(self.handle, head_labels=head, dtype=self.placement.weights_dtype(tuner.frozen_base),
                               **options)
            self.model = model if "device_map" in options else model.to(self.placement.device)
            self.holding = BASE
        return self.model

    def prepare(self) -> Any:
        """The base wrapped by the recipe's tuner, with its seeded initial state (adapters, new head)."""
        if not self.prepared:
            model = self.base()
            self.model = upcast_trainable(self._tuner().prepare(model, self.recipe, self.handle.kind))
            self.holding = INITIAL
            self.initial = self.trainable_state() if self.snapshot else None
        return self.model

    def _tuner(self) -> Any:
        from tuners import load_all  # the tuners register when imported, in whichever process this runs

        return load_all().get(self.recipe.tuner)

    def fresh(self) -> Any:
        """The prepared model in its initial state, for one setting to train from."""
        if self.prepared and self.holding != INITIAL:
            if self.initial is not None:
                self.load_state(self.initial)
                self.holding = INITIAL
            else:  # no snapshot kept: load the base again rather than hold a second copy of its weights
                self.model, self.holding = None, None
        model = self.prepare()
        self.holding = TRAINING
        return model

    def trainable_state(self, copy: bool = True) -> dict[str, Any]:
        """The trainable tensors by name; `copy=False` gives views that change as the model trains on."""
        return {n: (p.detach().clone() if copy else p.detach()).contiguous()
                for n, p in self.model.named_parameters() if p.requires_grad}

    def load_state(self, state: dict[str, Any]) -> None:
        expected = {n for n, p in self.model.named_parameters() if p.requires_grad}
        if set(state) != expected:
            raise RunFailure(f"kept tensors do not fit the prepared model ({len(set(state) ^ expected)} names differ); "
                             "rerun with --force")
        self.model.load_state_dict(state, strict=False)
        self.model.eval()

    def tuned(self, key: str, tensors: Any) -> Any:
        """The model holding the tuned setting `key`; `tensors()` gives its trainable tensors when not attached."""
        if self.holding != key:
            self.prepare()
            self.load_state(tensors())
            self.holding = key
        return self.model

    def trained(self, key: str) -> None:
        """The model now holds setting `key`, just trained."""
        self.holding = key

    def adapted(self) -> Any:
        """The base with the candidate's peft adapter on it (an `adapter:` candidate, scored as it is); `base()`
        after it loads the base again, without the adapter."""
        if self.holding != ADAPTER:
            from harness.models.loading import load_adapter

            self.model = load_adapter(self.base(), self.handle)
            self.holding = ADAPTER
        return self.model


def upcast_trainable(model: Any) -> Any:
    """Trainable parameters in fp32 (a new head or a module peft saves, loaded with a half-precision base on a GPU):
    the optimizer's updates are too small for bf16 weights; autocast runs their matmuls in half precision anyway."""
    import torch

    for p in model.parameters():
        if p.requires_grad and p.dtype in (torch.float16, torch.bfloat16):
            p.data = p.data.float()
    return model
