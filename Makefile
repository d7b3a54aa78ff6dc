# ipv6gate: `make demo` and `make test` set up everything they need on a fresh Debian machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck unit demo bench knot venv clean

test: venv knot lint typecheck
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

# Fast loop: unit tests only (no Knot, no moto server).
unit: venv
	$(PY) -m pytest -q tests/unit tests/conformance

venv: $(STAMP)

$(STAMP): pyproject.toml layers/ipv6gate/requirements.txt
	@py313="$$(scripts/find-python313.sh)" || exit 1; \
	  [ -x $(PY) ] || "$$py313" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

# Knot DNS, the real DNS server the integration tests and the demo start on loopback.
knot:
	@if ! command -v knotd >/dev/null 2>&1 && [ ! -x /usr/sbin/knotd ]; then \
	  echo "installing knot (Knot DNS) with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq knot >/dev/null; \
	fi

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache

# The demo: moto server + Knot (serving events/zones), the template's table and bucket, then every
# events/*.json through the SAM function's handler; compared with events/expected.json (exit 1 on a mismatch).
demo: venv knot
	$(PY) scripts/demo.py
