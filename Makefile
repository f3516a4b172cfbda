# citybrain: `make help` lists the targets.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo test test-unit lint bench dashboards stack-up stack-down stack-status docker-tokens clean

help: ## list the targets
	@# Padded to the longest target's name, so a new long one keeps the column.
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {name[++n] = $$1; what[n] = $$2; \
		if (length($$1) > w) w = length($$1)} \
		END {for (i = 1; i <= n; i++) printf "  %-" w "s  %s\n", name[i], what[i]}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv/ and install citybrain with its dev tools there

demo: install ## the main job: local Kafka + Prometheus, a worker, a real-data replay, a summary
	$(BIN)/citybrain demo --summary demo-summary.json --report demo-report.html

# The unit tests are pure, so pytest-xdist spreads them over the cores (up to 4 processes;
# each imports the suite once). The integration and end-to-end tests mostly wait on Kafka,
# Prometheus and worker processes (the load stayed below 1 in one process), so they run
# in SERVICE_PROCS processes, more than the cores, each with its own session stack of real
# services (tests/services.py: ports 50 apart per process, its own run directory; about
# 1-1.5 GB each); --dist loadfile keeps a file's tests in one process, with its module
# fixtures, and the longest files go first (tests/conftest.py: SLOWEST_FIRST; xdist's own
# reorder, by count of tests, put the ten-minute storms last). Both parts run even when the
# first fails, so one run shows every failure; the status is the first failure's.
XDIST := -n auto --maxprocesses 4 --dist worksteal
SERVICE_PROCS ?= 3
XDIST_SERVICES := -n $(SERVICE_PROCS) --dist loadfile --no-loadscope-reorder

test: install ## every test: unit (on every core), integration (real Kafka, Prometheus) and end to end (3 processes)
	@status=0; \
	$(BIN)/pytest $(XDIST) tests/unit || status=$$?; \
	$(BIN)/pytest $(XDIST_SERVICES) tests/integration tests/e2e || { [ $$status -ne 0 ] || status=$$?; }; \
	exit $$status

test-unit: install ## the fast, pure tests only
	$(BIN)/pytest $(XDIST) tests/unit

lint: install ## ruff, formatting, mypy and the import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install ## detector speed, the in-process ceiling, catch-up throughput (vs aiokafka, ConsumerPerformance, Quix; one reading per message and edge packs), latency, memory, worker start and restart, MQTT ingest, rehearsal
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python -m bench.detector_speed --out bench/results-detectors.json
	$(BIN)/python -m bench.ceiling --out bench/results.json
	$(BIN)/python -m bench.ceiling --pack 100 --out bench/results.json
	$(BIN)/citybrain stack up
	$(BIN)/python -m bench.catchup --out bench/results.json
	$(BIN)/python -m bench.catchup --pack 100 --out bench/results.json
	$(BIN)/python -m bench.latency --out bench/results.json
	$(BIN)/python -m bench.latency --pack-ms 20 --out bench/results.json
	$(BIN)/python -m bench.memory --out bench/results.json
	$(BIN)/python -m bench.worker_start --out bench/results.json
	$(BIN)/python -m bench.mqtt_ingest --out bench/results.json
	$(BIN)/python -m bench.rehearsal --out bench/results-rehearsal.json

dashboards: install ## regenerate dashboards/generated from code
	$(BIN)/citybrain dashboards generate

stack-up: install ## start the local Kafka, Prometheus and Mosquitto
	$(BIN)/citybrain stack up

stack-down: install ## stop them and the worker the demo left running
	$(BIN)/citybrain stack down

stack-status: install ## say whether Kafka, Prometheus, Mosquitto and the demo's worker run
	@# Not ready (status 1) is this target's answer, said in one line: make's own "Error 1"
	@# line after it was noise. Scripts test `citybrain stack status` (0 ready; 1 not, or the
	@# demo's worker crashed).
	@echo '$(BIN)/citybrain stack status'
	@$(BIN)/citybrain stack status || { s=$$?; [ $$s -eq 1 ] || exit $$s; }

# The compose deployment's API tokens (tools/docker-tokens.sh: a fresh secret per role in
# DOCKER_DIR/<role>.token, mode 0600, git-ignored, an existing one kept; their SHA-256
# hashes in DOCKER_DIR/tokens.yaml, the file docker/compose.yaml mounts).
DOCKER_DIR ?= docker
TOKEN_ROLES := operator coordinator gateway

docker-tokens: install ## write docker/tokens.yaml for compose, and the tokens in docker/<role>.token
	@sh tools/docker-tokens.sh "$(DOCKER_DIR)" "$(BIN)" $(TOKEN_ROLES)

# Refused while a process runs from the virtualenv (the demo's worker, a test run): it
# would be deleted under them, `citybrain stack down` with it; and while the local stack
# runs, which that command stops (tools/venv-in-use.sh).
clean: ## remove the virtualenv and caches (not the Kafka download); refused while something runs from it or the local stack runs
	@sh tools/venv-in-use.sh "$(VENV)"
	rm -rf "$(VENV)" .pytest_cache .mypy_cache .ruff_cache *.egg-info
