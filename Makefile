# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := redis-demo

.PHONY: demo test unit integration bench clean venv

venv: $(BIN)/pyinfra
$(BIN)/pyinfra: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
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

## The whole suite: unit tests, then integration tests against real containers.
test: venv
	$(BIN)/pytest tests/unit tests/integration

unit: venv
	$(BIN)/pytest tests/unit

integration: venv
	$(BIN)/pytest tests/integration

## Provisioning speed and Redis latency (BENCHMARKS.md, bench/benchmark.png); not part of make test.
bench: venv
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/run.py

## Remove the demo container and everything the tests may have left.
clean:
	-docker rm -f $(DEMO)
	-$(PYTHON) tests/testbed.py clean --images
