# Quick start: `make demo` and `make test` do all set-up themselves on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.devd-installed
# Metaflow refuses to run as root or without a user name: use a stand-in name then.
DEVD_USER := $(shell u="$${USER:-}"; if [ -z "$$u" ] || [ "$$u" = root ]; then echo devd; else echo "$$u"; fi)
export USER := $(DEVD_USER)

.PHONY: install demo test lint bench clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m compileall -q devd  # bytecode even under PYTHONDONTWRITEBYTECODE: the CLI starts faster
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) examples/demo.py

lint: install
	$(PY) -m ruff check devd tests bench examples

# The card tests render in a real headless Chromium (Debian's): install it when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "chromium is missing and installing it needs root: card browser tests will skip" >&2; fi; }

test: install lint chromium
	$(PY) -m pytest -q

bench: install
	$(PY) bench/spin_bench.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache *.egg-info
