# Two commands do all set-up on a fresh machine:  make demo  (the main job)  and  make test  (the suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# the install stamp is keyed on pyproject.toml, so `make test` twice does not reinstall
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: install test compose-test lint typecheck demo stop bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	set -o pipefail; $(BIN)/python -m pip install -q --upgrade pip 2>&1 | { grep -v "^WARNING: Location" || true; }
	set -o pipefail; $(BIN)/python -m pip install -q -e '.[dev,worker,service]' 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(BIN)/python -c "import rskd_core, worker.driver, service.app, torch, torchvision, sklearn, pydantic, yaml, pytest, ray, mlflow"
	rm -f $(VENV)/.installed-* && touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

# the image built from the Dockerfile and the compose stack run in real containers (rootful Podman from Debian behind
# its Docker API, driven by the real Compose binary), the smoke sweep through the API; see tests/containers/
compose-test: install
	bash tests/containers/install.sh
	$(BIN)/pytest -m containers tests/containers $(PYTEST_ARGS)
	@cat .test-artifacts/compose-test.json

# the embedded stack (Ray head, MLflow on SQLite, the API) in the background, the digits ablation submitted over REST
# and followed to the end, the comparison table printed; the stack stays up for browsing until `make stop`
demo: install
	$(BIN)/rskd serve --detach
	$(BIN)/rskd submit examples/sweeps/digits_ablation.yaml --follow
	@echo
	@echo "Browse: dashboard http://127.0.0.1:8000/dashboards | API docs http://127.0.0.1:8000/docs | MLflow http://127.0.0.1:5000 | Ray http://127.0.0.1:8265"
	@echo "Stop everything with: make stop"

stop:
	@test -x $(BIN)/rskd && $(BIN)/rskd stop || echo "nothing to stop"

bench: install
	$(BIN)/python benchmarks/step_overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
