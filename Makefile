# cxrelay — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: demo test build lint bench bench-ratelimit bench-oncall bench-serve bench-exports bench-recovery bench-scaleout chaos image check-deploy ensure-deps clean-demo

## Build everything (debug).
build: ensure-deps
	$(CARGO) build --workspace --all-targets

## The main job end to end: private Redis, the bundled simulator, 2 workers, 10,000 items,
## on the release build (what ships: its items/s are the real ones).
demo: ensure-deps
	$(CARGO) build --release --bin cxrelay
	CXRELAY_BIN=target/release/cxrelay scripts/demo

## Unit and integration tests (each integration test starts its own redis-server), then the
## delivery, crash-recovery, rate-limit and breaker suites again on a private 3-master Redis
## Cluster, and delivery on a private TLS Redis with an ACL user.
test: ensure-deps
	$(CARGO) test --workspace --all-targets
	CXRELAY_TEST_REDIS=cluster $(CARGO) test --test delivery --test crash_recovery --test rate_limit --test breaker
	CXRELAY_TEST_REDIS=tls $(CARGO) test --test delivery

## Lints (not part of `make test`): formatting (rustfmt.toml) and clippy.
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Throughput benchmark (see BENCHMARKS.md).
bench: ensure-deps
	scripts/bench

## Rate-limit benchmark (see BENCHMARKS.md).
bench-ratelimit: ensure-deps
	scripts/bench-ratelimit

## On-call benchmark: replay, failed listing, webhook dispatcher (see BENCHMARKS.md).
bench-oncall: ensure-deps
	scripts/bench-oncall

## HTTP API benchmark: ingest over HTTP, report latency under load (see BENCHMARKS.md).
bench-serve: ensure-deps
	scripts/bench-serve

## Real-API fit benchmark: CSV enqueue, signed export callbacks (see BENCHMARKS.md).
bench-exports: ensure-deps
	scripts/bench-exports

## Recovery of a kill -9'd worker under the default lease and the old 10 s one (see BENCHMARKS.md).
bench-recovery: ensure-deps
	scripts/bench-recovery

## Scale-out: 1, 2 and 4 worker processes against a 50 ms target (see BENCHMARKS.md).
bench-scaleout: ensure-deps
	scripts/bench-scaleout

## Chaos run (see RELIABILITY.md).
chaos: ensure-deps
	scripts/chaos

## Container image (Dockerfile) with podman, else docker; tag IMAGE=cxrelay:dev (see deploy/README.md).
image:
	scripts/image

## Offline checks of the Dockerfile, deploy/k8s and the Grafana dashboard, then their self-test
## (each check must fail on a broken copy). Installs yamllint, hadolint, promtool… when missing.
check-deploy:
	scripts/check-deploy
	scripts/check-deploy --self-test

## Install what the project needs from the system package manager (redis-server).
ensure-deps:
	@scripts/ensure-deps

clean-demo:
	rm -rf .demo
