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
	$(VENV)/bin/lint-imports --no-cache

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

# Knot DNS, the real DNS server the integration tests and the demo start on loopback, and Perl's
# Mail::DKIM, the independent verifier of the DKIM differential test (tests/differential/).
knot:
	@missing=""; \
	  command -v knotd >/dev/null 2>&1 || [ -x /usr/sbin/knotd ] || missing="knot"; \
	  perl -MMail::DKIM::Verifier -e 1 2>/dev/null || missing="$$missing libmail-dkim-perl"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing$$missing with apt-get"; \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	  fi

clean:
	rm -rf $(VENV) .venv-security .aws-sam .pytest_cache .mypy_cache .ruff_cache

# The demo: moto server + Knot (serving events/zones), the template's table and bucket, then every
# events/*.json through the SAM function's handler; compared with events/expected.json (exit 1 on a mismatch).
demo: venv knot
	$(PY) scripts/demo.py

.PHONY: security load

# Security scan: checkov (pinned in scripts/security_scan.py, installed into its own venv
# .venv-security with the Python 3.13 of scripts/find-python313.sh) on template.yaml and on its SAM
# translation, plus cfn-lint with informational rules. Fails on any finding not fixed or justified
# by an inline `Metadata: checkov: skip:` with a reason.
security: venv
	$(PY) scripts/security_scan.py

# Load test (not part of `make test`): 10,000 decisions through the SAM gate function with its real
# adapters, against moto server and Knot behind a fault-injecting DNS proxy, all on loopback.
# Bounded (--max-seconds); pass options with LOAD_ARGS, e.g. make load LOAD_ARGS="--decisions 2000".
load: venv knot
	$(PY) load/run.py $(LOAD_ARGS)

.PHONY: fuzz
# Soak test (not part of `make test`): 100,000 hostile SES events and raw messages through the gate's
# Lambda body in process (zone-file DNS, in-memory ports); exit 1 on an escaped exception or a
# malformed decision. Options: fuzz/soak.py --help (--seed, --max-seconds, --strict, --profile).
fuzz: venv
	$(PY) fuzz/soak.py --events 100000

# Benchmarks (bench/README.md): decision latency against the DNS critical path (Knot behind a delaying
# proxy), the plain libraries and authheaders, cold start, warm CPU, DKIM on large messages, cost.
# Writes bench/results/latest.json and latest.md. Extra options: make bench BENCH_ARGS="--iterations 50".
bench: venv knot
	@$(PY) -c "import authheaders" 2>/dev/null || $(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) bench/run.py $(BENCH_ARGS)
