# ipv6gate: `make demo`, `make local` and `make test` set up everything they need on a fresh Debian machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# A scenario set: a folder laid out like events/ (README "Try it locally"); for demo and local.
SCENARIOS ?= events

.PHONY: test lint typecheck unit demo sandbox local local-deps bench knot venv clean smtp-deps smtp-demo dist \
	localstack-deps deploy-rehearsal

# What CI runs (.ci/run): lint, types, and every test, including both built functions in SAM CLI's
# local Lambda, in offline arm64 containers (tests/integration/test_local_lambda.py), and the
# reduced deploy rehearsal into LocalStack (tests/integration/test_deploy_rehearsal.py).
test: venv knot local-deps smtp-deps localstack-deps lint typecheck
	$(PY) -m pytest -q --durations=25

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
	rm -rf $(VENV) .venv-security .venv-localstack .aws-sam .pytest_cache .mypy_cache .ruff_cache dist build

# The demo: moto server + Knot (serving $(SCENARIOS)/zones), the template's table and bucket, then every
# event of the scenario set through the SAM function's handler in this Python; compared with its
# expected.json (exit 1 on a mismatch). make demo SCENARIOS=<dir> for another set.
demo: venv knot
	$(PY) -m scripts.demo --scenarios $(SCENARIOS)

# A sandbox to try the CLI before deploying: moto server on loopback with the template's tables, bucket
# and queues, $(SCENARIOS)' tenants and raw messages in them; prints the `export` lines for
# `ipv6gate tenants`, `evaluate --record` and `trace`. Stays up until Ctrl-C.
sandbox: venv
	$(PY) -m scripts.sandbox --scenarios $(SCENARIOS)

# The built artifact: as root, a private dockerd (state in .local-lambda/), the offline arm64 Lambda
# base image (assembled without emulation once per machine, under a minute, cached), sam build, moto
# + Knot on loopback, `sam local start-lambda` with a warm container per function, then GateFunction
# with each event of $(SCENARIOS) and BouncerFunction with its SendBounce-free paths (their DNS
# comes with them); table like make demo; exit 1 on a mismatch or a handler error. About 2 minutes.
local: venv knot local-deps
	$(PY) -m scripts.local --scenarios $(SCENARIOS)

# What `make local` (and its CI test) needs from Debian: dockerd, mmdebstrap for the offline Lambda
# base image, qemu-user-static to run arm64 containers on another architecture. Installed when missing.
local-deps:
	@pkgs=""; \
	  command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || pkgs="$$pkgs docker.io"; \
	  command -v mmdebstrap >/dev/null 2>&1 || pkgs="$$pkgs mmdebstrap"; \
	  if [ "$$(uname -m)" != aarch64 ] && ! command -v qemu-aarch64-static >/dev/null 2>&1; then pkgs="$$pkgs qemu-user-static"; fi; \
	  if [ -n "$$pkgs" ]; then \
	    echo "installing$$pkgs with apt-get"; \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$pkgs >/dev/null; \
	  fi

# The deploy rehearsal's AWS emulator: localstack-core in a venv of its own (it pins cryptography and
# pyopenssl apart from the dev venv's; the pins below are what it runs with on Python 3.13), plus the
# rehearsal's LocalStack plugin (devstack/localstack_plugin: the offline stand-ins).
LS_VENV := .venv-localstack
LS_STAMP := $(LS_VENV)/.installed
localstack-deps: $(LS_STAMP)

$(LS_STAMP): devstack/localstack_plugin/pyproject.toml
	@py313="$$(scripts/find-python313.sh)" || exit 1; \
	  [ -x $(LS_VENV)/bin/python ] || "$$py313" -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LS_VENV)/bin/python -m pip install --quiet 'localstack-core[runtime]==2026.3.0' 'cbor2<6' \
	  'cryptography==43.0.3' 'pyopenssl==24.2.1' 'service_identity<25' -e devstack/localstack_plugin
	@touch $@

# `sam deploy` rehearsed, as root: README "Deploy"'s blocks (the real SAM CLI) deploy template.yaml into
# LocalStack on this host (private dockerd, the offline Lambda image), then the checks of README "Try
# it locally" (make deploy-rehearsal):
# every event of $(SCENARIOS) on the deployed gate, a tenant toggled with `ipv6gate tenants --stack`,
# a bounce through the deployed queue and bouncer, an update in place, `sam delete`.
deploy-rehearsal: venv knot local-deps localstack-deps
	$(PY) -m scripts.deploy_rehearsal --scenarios $(SCENARIOS)

.PHONY: security load load-milter

# Security scan: checkov (pinned in scripts/security_scan.py, installed into its own venv
# .venv-security with the Python 3.13 of scripts/find-python313.sh) on template.yaml and on its SAM
# translation, plus cfn-lint with informational rules. Fails on any finding not fixed or justified
# by an inline `Metadata: checkov: skip:` with a reason.
security: venv
	$(PY) -m scripts.security_scan

# Load test (not part of `make test`): 10,000 decisions through the SAM gate function with its real
# adapters, against moto server and Knot behind a fault-injecting DNS proxy, all on loopback.
# Bounded (--max-seconds); pass options with LOAD_ARGS, e.g. make load LOAD_ARGS="--decisions 2000".
# Then the milter's soak (load/milter_soak.py): 20,000 SMTP sessions through a private Postfix to
# `ipv6gate milter`, hostile ones among them and a burst of 1,000 at once; every reply checked, the
# milter's threads and RSS reported at start and end (flat). Options with SOAK_ARGS; `make load-milter`
# runs the soak alone.
load: venv knot smtp-deps
	$(PY) -m load.run $(LOAD_ARGS)
	$(PY) -m load.milter_soak $(SOAK_ARGS)

load-milter: venv knot smtp-deps
	$(PY) -m load.milter_soak $(SOAK_ARGS)

.PHONY: fuzz
# Soak test (not part of `make test`): 100,000 hostile SES events and raw messages through the gate's
# Lambda body in process (zone-file DNS, in-memory ports); exit 1 on an escaped exception or a
# malformed decision. Options: fuzz/soak.py --help (--seed, --max-seconds, --strict, --profile).
fuzz: venv
	$(PY) -m fuzz.soak --events 100000

# Benchmarks (bench/README.md): decision latency against the DNS critical path (Knot behind a delaying
# proxy), the plain libraries and authheaders, cold start, warm CPU, DKIM on large messages, cost, and
# the milter beside Postfix alone and the peer chain (opendkim, pyspf-milter; as root, in a namespace).
# Writes bench/results/latest.json and latest.md. Extra options: make bench BENCH_ARGS="--iterations 50".
bench: venv knot smtp-deps
	@$(PY) -c "import authheaders" 2>/dev/null || $(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) -m bench.run $(BENCH_ARGS)

# The SMTP-time front door's parts: Postfix (a private instance per test or demo, never the system
# service: debconf is told "No configuration"), swaks (to try it by hand), libmilter-dev to build
# pymilter, systemd-analyze (verifies packaging/'s unit in a test), OpenDKIM's miltertest (an
# independent milter client for tests/hostile/'s Lua scripts), opendkim and pyspf-milter (the peer
# chain `make bench` runs beside the milter, bench/README.md "Peers"; never started as services),
# then the package's `milter` extra (pymilter, authres) in the venv.
SMTP_STAMP := $(VENV)/.installed-milter
smtp-deps: venv
	@pkgs=""; \
	  command -v postfix >/dev/null 2>&1 || [ -x /usr/sbin/postfix ] || pkgs="$$pkgs postfix"; \
	  command -v swaks >/dev/null 2>&1 || pkgs="$$pkgs swaks"; \
	  [ -e /usr/include/libmilter/mfapi.h ] || pkgs="$$pkgs libmilter-dev"; \
	  command -v systemd-analyze >/dev/null 2>&1 || pkgs="$$pkgs systemd"; \
	  command -v miltertest >/dev/null 2>&1 || pkgs="$$pkgs miltertest"; \
	  [ -x /usr/sbin/opendkim ] || pkgs="$$pkgs opendkim"; \
	  [ -x /usr/bin/pyspf-milter ] || pkgs="$$pkgs pyspf-milter"; \
	  if [ -n "$$pkgs" ]; then \
	    echo "installing$$pkgs with apt-get"; \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    echo "postfix postfix/main_mailer_type select No configuration" | $$SUDO debconf-set-selections; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$pkgs >/dev/null; \
	  fi
	@[ -f $(SMTP_STAMP) ] && [ $(SMTP_STAMP) -nt pyproject.toml ] || \
	  { $(PY) -m pip install --quiet -e '.[dev,milter]' && touch $(SMTP_STAMP); }

# Every event of $(SCENARIOS) as a real SMTP session: moto (the template's tables) + Knot, `ipv6gate
# milter` with the gate function's environment, a private Postfix on 127.0.0.1 and [::1] with XCLIENT;
# the reply each recipient got, compared with expected.json (exit 1 on a mismatch).
smtp-demo: venv knot smtp-deps
	$(PY) -m scripts.smtp_demo --scenarios $(SCENARIOS)

# What a mail host installs offline (docs/smtp-time.md "Install and run on the mail host"): the package's
# wheel in dist/, and in dist/wheelhouse/ every wheel it needs with the `milter` extra (pymilter compiled
# here against libmilter, so build on the CPU architecture and Debian release of the mail host).
dist: venv smtp-deps
	rm -rf dist
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir dist .
	$(PY) -m pip wheel --quiet --wheel-dir dist/wheelhouse "$$(ls dist/ipv6gate-*-py3-none-any.whl)[milter]"
	@ls dist/*.whl && echo "dist/wheelhouse: $$(ls dist/wheelhouse | wc -l) wheels"
