# The two set-up commands of the README. Both install what they need, idempotently:
# apt packages only when a tool is missing, the venv only when pyproject.toml, setup.py or
# the compiled core's sources changed (pip builds the Cython extension in place).
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The benchmarks are scripts without a .py suffix: ruff lints them only when named.
BENCH_SCRIPTS := $(filter-out %.md,$(wildcard bench/*))
APT_TOOLS := tcpdump:tcpdump tshark:tshark nc:netcat-openbsd nft:nftables ip:iproute2 strace:strace cc:gcc python3-config:python3-dev tmux:tmux curl:curl nginx:nginx redis-server:redis-server redis-cli:redis-tools socat:socat ncat:ncat openssl:openssl java:default-jre-headless dnsmasq:dnsmasq-base dig:bind9-dnsutils psql:postgresql

.PHONY: run test lint system clean fuzz

CORE_SOURCES := $(wildcard wirecorr/_core/*.pyx wirecorr/_core/*.pxd)

$(STAMP): pyproject.toml setup.py $(CORE_SOURCES)
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

system:
	@missing=""; for pair in $(APT_TOOLS); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The TUI on the shipped nc handshake+echo recording; without a terminal, its text report.
run: system $(STAMP)
	@if [ -t 0 ] && [ -t 2 ]; then $(VENV)/bin/wirecorr tui captures/handshake-echo.pcapng; \
	else $(VENV)/bin/wirecorr analyze captures/handshake-echo.pcapng; fi

lint: $(STAMP)
	$(VENV)/bin/ruff check wirecorr tests $(BENCH_SCRIPTS)
	$(VENV)/bin/ruff format --check wirecorr tests $(BENCH_SCRIPTS)

test: system $(STAMP) lint
	$(PY) -m pytest -q -p no:cacheprovider tests

# The long fuzz run (100,000 cases over every reader; figures in bench/RESULTS.md).
# `make test` runs a bounded slice of the same cases (tests/test_fuzz.py).
fuzz: system $(STAMP)
	$(PY) bench/fuzz

clean:
	rm -rf $(VENV) build wirecorr/_core/*.c wirecorr/_core/*.so
