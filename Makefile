# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := redis-demo

.PHONY: demo test test-fast check unit integration bench clean venv lock

venv: $(BIN)/pyinfra
$(BIN)/pyinfra: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[test,lint]'
	touch $@

## Provision a throwaway systemd container named redis-demo and check it.
demo: venv
	$(BIN)/python tests/testbed.py start $(DEMO)
	$(BIN)/pyinfra -y inventory/demo.py deploy.py
	$(BIN)/pytest -q tests/infra --hosts=docker://$(DEMO)
	docker exec $(DEMO) redis-monitor sample-data
	@echo
	@echo "redis-demo is provisioned. Reach it with:"
	@echo "  docker exec -it $(DEMO) redis-monitor databases     # or status, memory, health, test..."
	@echo "  docker exec -it $(DEMO) sh -c '. /etc/smart-redis/credentials && REDISCLI_AUTH=\"\$$REDIS_ADMIN_PASSWORD\" redis-cli --user \"\$$REDIS_ADMIN_USER\"'"
	@echo "  $(BIN)/pyinfra -y inventory/demo.py deploy.py   # converge it again"
	@echo "  docker rm -f $(DEMO)                             # throw it away"

# Test modules run side by side, each whole in one worker (its containers are its own): they
# mostly wait for containers and Sentinel (two cores are 40 % busy over a run), so five fit: the
# four group modules start first, and the fifth worker runs the single-host ones meanwhile.
WORKERS ?= 5
PYTEST_PARALLEL := $(BIN)/pytest -n $(WORKERS) --dist loadfile --no-loadscope-reorder --durations=25
# The modules that need a group of three hosts; test-fast leaves them out.
GROUP_MODULES := tests/integration/test_sentinel.py tests/integration/test_sentinel_changes.py tests/integration/test_sentinel_tls.py tests/integration/test_handover.py tests/integration/test_sentinel_valkey.py

## The whole suite: lint and types, unit tests, then integration tests against real containers.
# A fresh machine's Docker package and the test images' base file systems are prepared in the
# background meanwhile (tests/testbed.py prepare; its output in .cache/prepare.log); the tests
# start without waiting for it (their image builds wait for its base file systems, not the
# unit tests).
test:
	@mkdir -p .cache
	@$(PYTHON) tests/testbed.py prepare > .cache/prepare.log 2>&1 & prepared=$$!; \
	$(MAKE) --no-print-directory check && $(PYTEST_PARALLEL) tests/unit tests/integration; status=$$?; \
	wait $$prepared || { echo "tests/testbed.py prepare failed (the tests tried again):"; tail -n 5 .cache/prepare.log; }; \
	exit $$status

## The edit-run loop: lint, types, unit tests and the single-host integration modules.
test-fast: check
	$(PYTEST_PARALLEL) tests/unit tests/integration $(addprefix --ignore=,$(GROUP_MODULES))

## The fast part (no Docker): ruff (lint, format, import order) and mypy.
check: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest tests/unit

## Pin the repository's venv anew from a fresh one (after changing a range in pyproject.toml).
lock:
	rm -rf .cache/lock-venv
	$(PYTHON) -m venv .cache/lock-venv
	.cache/lock-venv/bin/pip install --quiet '.[test,lint,bench]'
	{ sed -n 1,2p requirements.lock; .cache/lock-venv/bin/pip freeze --exclude smart-redis; } > requirements.lock.new
	mv requirements.lock.new requirements.lock
	rm -rf .cache/lock-venv build

integration: venv
	$(BIN)/pytest tests/integration

## Provisioning speed and Redis latency (BENCHMARKS.md, bench/benchmark.png); not part of make test.
bench: venv
	$(BIN)/pip install --quiet -c requirements.lock -e '.[test,lint,bench]'
	$(BIN)/python bench/run.py

## Remove the demo container and everything the tests may have left.
clean:
	-docker rm -f $(DEMO)
	-$(PYTHON) tests/testbed.py clean --images
