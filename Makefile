# Developer tasks. `make` (or `make help`) lists them; each target's `## ` comment is its help.
.DEFAULT_GOAL := help
SHELL := bash
PYTHON ?= python3
PY_SOURCES := python examples tests bench migration_docs

.PHONY: help build-dev build-prod test check lint-python lint-rust typecheck layout bench docs docs-figures all

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) \
		| awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

build-dev: ## Build the engine (release) and install it in place (maturin develop, or pip -e outside a venv)
	@if [[ -n "$${VIRTUAL_ENV:-}$${CONDA_PREFIX:-}" ]]; then \
		echo "maturin develop --release"; maturin develop --release; \
	else \
		echo "$(PYTHON) -m pip install --no-build-isolation -e ."; \
		$(PYTHON) -m pip install --no-build-isolation -e .; \
	fi

build-prod: ## Build the release wheel into dist/
	maturin build --release -o dist/

test: ## Build and install the wheel, run cargo test and pytest (scripts/test)
	./scripts/test

check: lint-python lint-rust typecheck layout ## What CI checks besides the tests: lint, types, stubs, layout (needs the wheel installed: make test or scripts/test)

lint-python: ## ruff check and ruff format --check (ruff comes with the test extras)
	$(PYTHON) -m ruff check $(PY_SOURCES)
	$(PYTHON) -m ruff format --check $(PY_SOURCES)

lint-rust: ## cargo fmt --check and cargo clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# stubtest imports the installed module, so it runs away from the source folder.
typecheck: ## mypy --strict on the package, and stubtest of _native.pyi against the built module
	$(PYTHON) -m mypy --strict python/fastrapi_compat
	cd "$$(mktemp -d)" && PYTHONSAFEPATH=1 $(PYTHON) -m mypy.stubtest fastrapi_compat._native

layout: ## No import cycle among the package's modules or the crate's, no source file over 800 lines
	$(PYTHON) scripts/check_layout.py

bench: ## Run the benchmark against uvicorn, granian and FastrAPI (bench/README.md)
	$(PYTHON) -m bench

docs: ## Build the migration guide into migration_docs/site/ (mkdocs build --strict, pinned, in .cache/docs-venv)
	./scripts/docs

docs-figures: ## Redraw the guide's benchmark figures from bench/results/results.json (needs matplotlib)
	$(PYTHON) migration_docs/figures.py

all: test check ## Test, lint, typecheck and check the layout
