# The two commands a newcomer runs: `make run` and `make test` (see README.md).
# Both install what is missing, so they work on a fresh Debian 12 machine as root.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONF ?= agentd.conf
APT_PACKAGES := systemd libsystemd-dev pkg-config gcc python3-dev auditd openssh-server openssh-client \
	python3-audit sudo iproute2 procps util-linux libpam-modules systemd-journal-remote \
	python3-venv libyaml-dev libseccomp2 tlog asciinema chromium \
	rsync netcat-openbsd
# (python3-venv, libyaml-dev, libseccomp2: tests/system/test_unit_rights.py builds the packaged environment;
# tlog: the recorded test user; asciinema, chromium: tests/system/test_recording.py plays and renders)
STAMP := $(VENV)/.installed

.PHONY: run test venv deps lint unit compiled test-compiled stack-up stack-down soak bench bench-deps clean deb rpm splunk-ta install-test pkg-deps

run: $(STAMP)
	$(BIN)/agentd run -c $(CONF)

test: $(STAMP) stack-up lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-compiled

venv: $(STAMP)

# apt only when something is missing: dpkg-query is cheap, apt-get update is not.
define apt_install
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
endef

deps:
	$(call apt_install,$(APT_PACKAGES))

# What building and testing the packages needs besides deps (python3-venv for the
# private environment on Debian's python3.11, libyaml-dev for PyYAML, whose wheel
# embeds a private libyaml): lintian checks the deb, Debian's rpm package brings
# rpmbuild, debootstrap makes the clean Debian 12 root.
PKG_PACKAGES := dpkg-dev lintian rpm debootstrap groff-base
pkg-deps: deps
	$(call apt_install,$(PKG_PACKAGES))

deb: $(STAMP) pkg-deps
	packaging/deb/build.sh build

rpm: $(STAMP) pkg-deps
	packaging/rpm/build.sh build

splunk-ta:
	packaging/splunk/build.sh build

# Build the packages, lintian and rpm -qp them, then install the deb into a clean
# Debian 12 root (debootstrap, cached in /var/cache/agentd-ci), run it against the
# real stack, upgrade, remove, purge. CI runs it after `make test`.
install-test: $(STAMP) pkg-deps stack-up
	rm -f build/agentd_*.deb build/agentd-*.rpm build/TA-agentd-*.tgz
	$(MAKE) --no-print-directory deb rpm splunk-ta
	$(BIN)/python -m pytest -q packaging/tests $(PYTEST_ARGS)

$(STAMP): setup.cfg pyproject.toml | deps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# The opt-in compiled build (setup.py, AGENTD_MYPYC=1): the collectors package, with the
# auditd collector's hot modules compiled by mypyc from the same source, installed into
# .venv/compiled (agent/ and shippers/ are taken from the tree: they find files by their
# path in it). The tree and .venv/bin/agentd stay pure. Run it from another directory
# than the tree (the current directory comes first on sys.path):
#   cd /tmp && PYTHONPATH=$(CURDIR)/.venv/compiled:$(CURDIR) $(CURDIR)/.venv/bin/python -m agent.app.cli replay ...
# test-compiled runs the unit and golden tests against it (--import-mode=append: the tree
# after it on sys.path), after checking that the compiled modules are the ones imported.
COMPILED := $(VENV)/compiled
compiled: $(COMPILED)/.built

$(COMPILED)/.built: $(STAMP) setup.py setup.cfg $(shell find agent collectors shippers -name '*.py' 2>/dev/null)
	$(BIN)/pip install -q 'mypy>=1.11,<3' wheel
	rm -rf $(COMPILED)
	src=$$(mktemp -d) && trap 'rm -rf "$$src"' EXIT && \
	tar --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./tests --exclude=./benchmarks \
		--exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -C "$$src" -xf - && \
	AGENTD_MYPYC=1 $(BIN)/pip install -q --no-build-isolation --no-deps --no-compile --target $(COMPILED) "$$src"
	cd $(COMPILED) && rm -rf agent shippers bin agentd-*.dist-info
	touch $@

test-compiled: compiled
	cd / && PYTHONPATH=$(CURDIR)/$(COMPILED) $(CURDIR)/$(BIN)/python -c \
		'import collectors.auditd.parse as m, sys; sys.exit(0 if m.__file__.endswith(".so") else m.__file__ + " is not compiled")'
	PYTHONPATH=$(CURDIR)/$(COMPILED) $(BIN)/pytest -q -p no:cacheprovider --import-mode=append tests/unit tests/golden

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit $(PYTEST_ARGS)

stack-up: deps
	tests/stack/stackctl up

stack-down:
	tests/stack/stackctl down

# The long versions of the kill -9 and rotation loops (make test runs short ones).
soak: $(STAMP) stack-up
	AGENTD_SOAK=1 $(BIN)/python -m pytest -q -s tests/system/test_daemon.py $(PYTEST_ARGS)

bench: $(STAMP) stack-up bench-deps
	$(BIN)/python benchmarks/run.py

# The peers the benchmarks measure against: syslog-ng for benchmarks/ship_peer.py. Its
# package would start a system syslog-ng that takes /dev/log and the journal's syslog
# socket: a policy-rc.d that refuses every start covers the install (removed after, if
# it is ours), and on a systemd host the unit is disabled and stopped. apt runs under
# flock because other jobs on a shared machine may run apt at the same time.
BENCH_PACKAGES := syslog-ng-core syslog-ng-mod-http
bench-deps:
	@missing=$$(for p in $(BENCH_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; ours=; \
		if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
			chmod 755 /usr/sbin/policy-rc.d; ours=1; fi; \
		flock /tmp/agentd-apt.lock sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $$missing"; rc=$$?; \
		if [ -n "$$ours" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
		if [ -d /run/systemd/system ]; then systemctl disable --now syslog-ng.service >/dev/null 2>&1 || true; fi; \
		exit $$rc; \
	fi

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
