# A fresh clone needs exactly two commands: `make dev` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint typecheck unit install browser clean mutation lock

# Every install comes from a lock file with hashes: requirements/dev.lock here (runtime,
# dev and local extras), requirements/runtime.lock in the Dockerfile. `make lock` writes
# both from pyproject.toml, keeping the pins it can; `make lock LOCK_ARGS=--upgrade`
# moves every pin to the newest allowed version.
$(STAMP): pyproject.toml requirements/dev.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
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

LOCK_VENV := .venv-lock
LOCK_FLAGS := --quiet --generate-hashes --allow-unsafe --all-build-deps --strip-extras \
	--no-emit-index-url --no-emit-find-links $(LOCK_ARGS)

lock:
	@test -x $(LOCK_VENV)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_VENV) && \
		$(LOCK_VENV)/bin/python -m pip install --quiet 'pip-tools==7.6.2'; }
	$(LOCK_VENV)/bin/pip-compile $(LOCK_FLAGS) -o requirements/runtime.lock pyproject.toml
	$(LOCK_VENV)/bin/pip-compile $(LOCK_FLAGS) --extra dev --extra local \
		-c requirements/runtime.lock -o requirements/dev.lock pyproject.toml

clean:
	rm -rf $(VENV) $(LOCK_VENV) .dunwell .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .grimp_cache
