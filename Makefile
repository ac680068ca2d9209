# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
CREW   ?= 1

.PHONY: run test install migrate demo serve contract bench clean frontend bundle-check

# The browser bundle (static/js/mythline.js and its map) is built from frontend/ with npm + esbuild
# and committed, so the room works wherever Python does: Node is a tool for changing the frontend,
# not for running the site. With Node, `npm ci` runs only when node_modules is missing or
# package.json / the lock changed (the stamp lives inside node_modules), the build only when a
# source changed; CI rebuilds it from the lock file and fails if the result differs from what is
# committed (`make bundle-check`). Without Node the committed bundle is used as it is, and the
# Node-dependent tests skip (or fail under MYTHLINE_REQUIRE_ALL=1).
NPM          ?= npm
FRONTEND     := frontend
NODE_STAMP   := $(FRONTEND)/node_modules/.mythline-installed
BUNDLE       := static/js/mythline.js
FRONTEND_SRC := $(shell find $(FRONTEND)/src -type f 2>/dev/null)
HAVE_NODE    := $(shell command -v node >/dev/null 2>&1 && command -v $(NPM) >/dev/null 2>&1 && echo yes)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever pyproject.toml (or the SDK's, sdk/pyproject.toml) changes. The SDK is its own
# distribution (mythline-sdk): the crew and the tests import it as any agent would.
$(STAMP): pyproject.toml sdk/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ./sdk -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/python manage.py migrate --noinput

demo: migrate
	$(BIN)/python manage.py seed_demo

ifeq ($(HAVE_NODE),yes)
$(NODE_STAMP): $(FRONTEND)/package.json $(FRONTEND)/package-lock.json
	cd $(FRONTEND) && $(NPM) ci --no-audit --no-fund
	touch $@

$(BUNDLE): $(NODE_STAMP) $(FRONTEND_SRC)
	cd $(FRONTEND) && $(NPM) run --silent build

frontend: $(BUNDLE)

# The committed bundle must be what the sources and the lock file build.
bundle-check: $(NODE_STAMP)
	cd $(FRONTEND) && $(NPM) run --silent build
	git diff --exit-code --stat -- $(BUNDLE) $(BUNDLE).map || \
	  (echo "static/js/mythline.js differs from what frontend/ builds: run 'make frontend' and commit it"; exit 1)
else
frontend:
	@echo "Node.js/npm not found: using the committed bundle ($(BUNDLE)); tests that need Node will skip."
bundle-check:
	@echo "Node.js/npm not found: cannot rebuild the bundle to check it"; exit 1
endif

run: demo frontend
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	@echo ""
	@echo "  Mythline is starting on http://$(HOST):$(PORT)/"
	@echo "  Sign in as 'demo' with password 'mythline-demo' (admin: /admin/)."
	@printf "  An agent token for 'narrator' (shown once): "
	@$(BIN)/python manage.py issue_token narrator --label "make run" --replace 2>/dev/null | tail -n 1
	@echo "  The crew worker serves every story with a writers' room, the demo's included, once the server"
	@echo "  is up: add the crew to your own story from its room (make run CREW=0: without the worker)."
	@echo "  The webhook worker sends the agents' webhooks (docs/protocol.md, \"Webhooks\")."
	@echo ""
	@$(BIN)/python manage.py run_webhooks & hooks=$$!; crew=; \
	if [ "$(CREW)" != "0" ]; then \
	  $(BIN)/python manage.py run_crew --url http://$(HOST):$(PORT) --wait 120 & \
	  crew=$$!; \
	fi; \
	trap 'kill $$hooks $$crew 2>/dev/null; wait $$hooks $$crew 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

# Production on this machine (docs/deploy.md): migrations checked, static collected, uvicorn
# workers, graceful on SIGTERM; listens on 0.0.0.0:$(PORT). More options in SERVE_ARGS
# (e.g. SERVE_ARGS="--workers 4 --crew the-lighthouse"); the environment as documented there.
serve: migrate
	$(BIN)/python manage.py serve --port $(PORT) $(SERVE_ARGS)

test: install frontend
	$(BIN)/python -m pytest $(PYTEST_ARGS)

contract: install
	../shared/contract/run $(PYTEST_ARGS)

# The benchmarks' own extra (matplotlib), then the ingest benchmark; the others are in
# docs/benchmarks.md.
bench: install
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache $(FRONTEND)/node_modules
