# A fresh clone needs exactly two commands: `make dev` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint typecheck unit install browser clean mutation

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/dunwell dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# The portal page is tested in Debian's headless Chromium, never a downloaded browser;
# Chromium brings no font of its own, so its screenshots get DejaVu. axe-core and the PDF
# reader the browser tests use come with the dev extras (make install).
browser:
	@test -x /usr/bin/chromium -a -d /usr/share/fonts/truetype/dejavu || { \
		echo "installing Debian's chromium and a font for the portal browser tests"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; }

unit: $(STAMP) browser
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck unit

# Mutation testing of billing/, tax/ and ledger/posting.py (bench/mutation.py says how);
# not part of make test or CI. ARGS="--changed" mutates only what changed since main.
MUTATION_STAMP := $(VENV)/.installed-mutation

$(MUTATION_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,mutation]'
	@touch $(MUTATION_STAMP)

mutation: $(MUTATION_STAMP)
	nice -n 19 $(BIN)/python bench/mutation.py $(ARGS)

clean:
	rm -rf $(VENV) .dunwell .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .grimp_cache
