# Two commands a newcomer needs: `make run` and `make test`. Both install what they use.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# libatomic1: Playwright's bundled Node driver links against it (missing on a minimal Debian).
APT_PACKAGES := postgresql python3-venv espeak-ng ffmpeg sox sip-tester debootstrap chromium fonts-wqy-microhei docker-compose libatomic1 kamailio
STAMP := .local/stamps

.PHONY: run test lint typecheck unit e2e browser faults deps system-deps venv clean bench bench-flow bench-asterisk cx callers

run: deps
	$(BIN)/ivr12333 run

test: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/pytest

unit: deps
	$(BIN)/pytest -m "not e2e and not browser"

e2e: deps
	$(BIN)/pytest -m e2e

browser: deps
	$(BIN)/pytest -m browser

# PostgreSQL under Patroni and etcd on loopback: a switchover and a killed primary under
# calls (tests/cluster, about 2 minutes; not part of `make test`).
.PHONY: cluster-local
cluster-local: deps
	$(MAKE) system-deps APT_PACKAGES="patroni etcd-server"
	$(BIN)/pytest -m cluster

# The database (and Asterisk) failing under calls in progress; part of `make test` too.
faults: deps
	$(BIN)/pytest -m faults

bench: deps
	$(BIN)/python -m bench.agi_load

# Each flow's happy-path call time from the built sounds, against the goals (bench/cx.py).
cx: deps
	$(BIN)/python -m bench.cx

# 150 callers who slip, through the real flows: the share served without an agent.
callers: deps
	$(BIN)/python -m bench.callers

# The real change-PIN flow end to end (PostgreSQL, argon2), with one worker and with two.
bench-flow: deps
	$(BIN)/python -m bench.agi_load --modes flow --workers 1,2

# Real SIPp calls through the local Asterisk 22, each keying a PIN change: 50 to 300 at once.
bench-asterisk: deps
	$(BIN)/python -m bench.asterisk_load

# `make test` in a container of a pristine Debian 12, on the committed tree (podman; see
# "A fresh Debian 12 in a container" in docker/README.md). Needs no .venv here.
.PHONY: fresh-test
fresh-test:
	docker/fresh-test.sh

# The production images built with podman and run for real with docker-compose: calls
# through the containerised Asterisk, a restart, down/up; see "The deploy test" in
# docker/README.md. Root; about 15 minutes on a first run, not part of `make test`.
.PHONY: deploy-test
deploy-test: deps
	$(BIN)/python -m tests.deploy.stack

# The cluster deployment (docker/compose.cluster.yaml) run for real with real calls through
# Kamailio while an Asterisk node, a FastAGI server and the database primary are killed; see
# "The cluster test" in docker/README.md. Root; reuses deploy-test's images, builds what is
# missing (about 20 minutes on a first run), not part of `make test`.
.PHONY: cluster-test
cluster-test: deps
	$(BIN)/python -m tests.deploy.cluster

deps: system-deps venv

# apt only when something is missing, so a second run costs nothing. Debian starts its own
# Kamailio service on install, on port 5060 where `make run`'s Asterisk listens: the project
# runs Kamailio itself (tests/e2e), so that service is turned off again.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	  case " $$missing " in *" kamailio "*) \
	    [ -d /run/systemd/system ] && $$SUDO systemctl disable --now kamailio >/dev/null 2>&1 || true;; \
	  esac; \
	fi

venv: $(STAMP)/venv

# Editable install: a new top-level package (a new */__init__.py) needs a reinstall.
$(STAMP)/venv: pyproject.toml $(wildcard */__init__.py)
	@mkdir -p $(STAMP)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

clean:
	-$(BIN)/ivr12333 asterisk down
	-$(BIN)/ivr12333 db stop
	rm -rf $(VENV) .local
