# tenant-secrets. The README's two commands are `make demo` and `make test`; both set up what they need.
# After `make demo`, `make validate`, `make plan` and `make shell` run `tenantctl` (and `pulumi`) on the
# demo's own copy of the dev stack (.state/demo/project), never editing a tracked file.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
# pytest workers: the e2e tests mostly wait on the engine and the services, so one per core keeps both busy.
TEST_WORKERS ?= auto

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: ## Python venv, PostgreSQL binaries, the Pulumi toolchain (cached per user)
	@bash scripts/setup.sh

services-up: setup ## start the local PostgreSQL and Infisical-compatible server (state in .state/)
	@source scripts/env.sh && $(PY) -m dev.services up

services-down: ## stop the local services (their data stays)
	@source scripts/env.sh && $(PY) -m dev.services down

demo: ## pulumi up of tenants.yaml on the dev stack against the local services, then a no-change preview
	@bash scripts/demo.sh

verify: setup ## tenantctl verify on the demo stack (after make demo): both stores against tenants.yaml, never a value
	@test -f .state/demo/project/Pulumi.dev.yaml || { echo "make verify checks the demo stack: run make demo first" >&2; exit 2; }
	@source scripts/env.sh && $(PY) -m dev.services up && eval "$$($(PY) -m dev.services env)" && source .state/demo/env \
	  && cd .state/demo/project && tenantctl verify --stack dev

test: setup ## the test suite (starts its own services, one set per worker); the long runs: make test-long
	@source scripts/env.sh && $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

test-long: setup ## the long runs kept out of make test (faults, a killed migration, the README in a fresh clone); CI runs both
	@source scripts/env.sh && $(PY) -m pytest -m long -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

lint: setup ## ruff, and mypy (strict on the core)
	@source scripts/env.sh && $(PY) -m ruff check . && $(PY) -m ruff format --check tenant_secrets components dev infisical_server && $(PY) -m mypy && actionlint

BENCH_BUCKETS ?= 64-ours,64-packed-plugin
bench: setup ## benchmarks (figures, not tests), docs/performance.md: 10 and 100 tenants vs the engine's floor and a naive design, and both with 64 tenants per resource (BENCH_BUCKETS); BENCH_ARGS="--sizes 1000 --engine-env PULUMI_SKIP_CHECKPOINTS=true"
	@source scripts/env.sh && $(PY) -m bench --buckets '$(BENCH_BUCKETS)' $(BENCH_ARGS)

bench-shards: setup ## the sharded benchmark (issue 14), docs/performance.md "Shards": SHARD_ARGS="--tenants 10000 --shards 8,16 --apply 3"
	@source scripts/env.sh && $(PY) -m bench.shards $(SHARD_ARGS)

bench-readers: setup ## the readers' benchmark (issue 28), Python and Node.js in one run: hit, miss, fallback beside the machine's limits; READER_BENCH_ARGS="--samples 20000"
	@source scripts/env.sh && $(PY) -m bench.readers $(READER_BENCH_ARGS)

validate: setup ## tenantctl validate tenants.yaml; after `make demo`, with the demo dev stack's value sources too
	@if [ -f .state/demo/project/Pulumi.dev.yaml ]; then bash scripts/local.sh tenantctl validate tenants.yaml --stack dev; \
	else source scripts/env.sh && tenantctl validate tenants.yaml; fi

plan: ## tenantctl plan --stack dev on the demo's stack (after `make demo`): the pull request's comment, locally
	@bash scripts/local.sh tenantctl plan --stack dev $(PLAN_ARGS)

shell: ## a shell in the demo's project (after `make demo`): tenantctl, pulumi, the local services' environment
	@bash scripts/local.sh

reader-wheel: setup ## the Python reader's wheel (tenant-secrets-reader, readers/python) in dist/, to pip install in a service
	@.venv/bin/python -m pip wheel -q --no-deps -w dist ./readers/python && ls dist/tenant_secrets_reader-*.whl

lock: ## re-pin requirements.lock from requirements.in
	@python3 -m venv .state/lockenv && .state/lockenv/bin/pip install -q -r requirements.in && .state/lockenv/bin/pip freeze > requirements.lock && rm -rf .state/lockenv

.PHONY: help setup services-up services-down demo verify test test-long lint bench bench-shards bench-readers validate plan shell reader-wheel lock
