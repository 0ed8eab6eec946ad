# tsi — the two commands a newcomer types: `make run` and `make test`.
# `make` builds build/tsi; `make bench` runs the benchmarks; `make fuzz` the fuzzers.
SHELL := /bin/bash
JOBS  ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
ASAN  ?= build-asan

.PHONY: all deps build asan run stop test bench fuzz format clean

all: build

deps:
	@scripts/deps

$(BUILD)/Makefile: CMakeLists.txt | deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: deps $(BUILD)/Makefile
	@cmake --build $(BUILD) -j $(JOBS) --target tsi
	@scripts/web

$(ASAN)/Makefile: CMakeLists.txt | deps
	@cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DTSI_SANITIZE=ON >/dev/null

asan: deps $(ASAN)/Makefile
	@cmake --build $(ASAN) -j $(JOBS)

# Starts what exists of the system: the embedded database (migrated) and, as they
# exist, the simulator, the collector and the API with the dashboard.
run: build
	@TSI_HA=$(HA) scripts/run

stop:
	@scripts/run --stop

# Every test, under AddressSanitizer + UBSan, against a PostgreSQL cluster the harness
# starts in a temporary directory.
test: build asan
	@scripts/test
	@if [ -x scripts/e2e ]; then scripts/e2e; fi

bench: build
	@scripts/bench

fuzz: deps
	@scripts/fuzz

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN) build-fuzz
