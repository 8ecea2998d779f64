# labenv: `make demo` and `make test` work on a fresh machine with Python 3.11+ and Go 1.26.
# The control-plane binaries are built from Go modules into ~/.cache/labenv (never into the repo).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: venv demo demo-down test unit integration lint typecheck bench cluster image clean help

help:
	@echo "make demo      build/reuse the local control plane, run the operator, start week21 and show it Ready"
	@echo "make test      lint, type-check, unit and integration tests (on the local control plane)"
	@echo "make bench     benchmarks against the kubectl floor (results in bench/results/)"
	@echo "make demo-down stop the demo operator and cluster"
	@echo "make image     build the operator image (operator/Dockerfile; needs a Docker engine)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

cluster: venv
	$(BIN)/labenv cluster build

demo: venv
	bash scripts/demo.sh

demo-down: venv
	bash scripts/demo.sh down

lint: venv
	$(BIN)/ruff check src tests operator bench
	$(BIN)/ruff format --check src tests operator bench

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -q tests/unit

integration: venv cluster
	$(BIN)/pytest -q tests/integration

test: lint typecheck venv cluster
	$(BIN)/pytest tests

bench: venv cluster
	$(BIN)/python -m bench

# The operator image. Needs a running Docker engine; there is none on the development machines, so
# this stops with a clear message instead of pretending. IMAGE=registry/name:tag to choose the name.
IMAGE ?= ghcr.io/labenv/operator:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

image:
	@docker info >/dev/null 2>&1 || { echo "make image: no Docker engine reachable ('docker info' failed): build operator/Dockerfile on a machine with Docker or in CI" >&2; exit 1; }
	docker build -f operator/Dockerfile -t $(IMAGE) .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
