# The two commands that matter: `make run` and `make test`.
GO        ?= go
# Binaries carry their VCS revision (--version, matchd_build_info) even
# where GOFLAGS says -buildvcs=false; "auto" skips it without git.
BUILD     := $(GO) build -buildvcs=auto
# Fuzzing time per target: FUZZTIME for `make fuzz`, SHORTFUZZ inside `make test`.
FUZZTIME  ?= 60s
SHORTFUZZ ?= 5s
# Benchmark repetitions, for benchstat.
COUNT     ?= 5
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Fuzz targets as package:Target.
FUZZ_TARGETS := ./engine:FuzzCommands ./engine:FuzzRestore ./units:FuzzParsePrice ./units:FuzzFormat \
                ./persist:FuzzDecodeRecord ./persist:FuzzGroupShape ./persist:FuzzSnapshotHeader ./api/wire:FuzzFrames ./replica:FuzzDecodeEntry

CRASH_ITERATIONS ?= 100
# make loadtest: offered rate, measured duration, fsync, output directory.
RATE     ?= 100000
DURATION ?= 15s
FSYNC    ?= true
LOADTEST_OUT ?= ./loadtest-out

.PHONY: all run cluster cluster-chaos test vet unit race web-deps fuzz-short fuzz bench peers lint diff-long crashtest loadtest latency attack chaos

all: test

# Builds and starts matchd on the demo configuration, data under ./data.
run:
	$(BUILD) -o bin/matchd ./cmd/matchd
	./bin/matchd

# A local 3-node cluster (raft) on 127.0.0.1 with the demo config; Ctrl-C stops it.
cluster:
	$(BUILD) -o bin/matchd ./cmd/matchd
	./scripts/cluster.sh

test: vet web-deps unit race fuzz-short

# The web view's browser test needs Debian's Chromium (/usr/bin/chromium;
# .ci/run installs it) and playwright-core from npm (installed here when
# Chromium is present). Without them the test is skipped, and says so.
web-deps:
	@if [ -x "$${CHROMIUM:-/usr/bin/chromium}" ] && command -v npm >/dev/null; then \
		[ -d api/web/e2e/node_modules/playwright-core ] || (cd api/web/e2e && npm ci --no-audit --no-fund --loglevel=error); \
		echo "web view: the headless Chromium test runs ($${CHROMIUM:-/usr/bin/chromium})"; \
	else \
		echo "web view: the headless Chromium test is SKIPPED: no Chromium at $${CHROMIUM:-/usr/bin/chromium} (apt-get install chromium) or no npm"; \
	fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -count=1 ./...

# The race detector over every package, in short mode (the differential test
# runs 100k commands there instead of 1M).
race:
	$(GO) test -count=1 -race -short ./...

# A target fails on a failing input it wrote to testdata/fuzz. A failure
# that wrote none ("context deadline exceeded" as -fuzztime ends) is Go's
# fuzzing coordinator racing its own deadline on a loaded machine: that
# target is run once more, and fails the build only if it fails again.
fuzz-short:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; dir=$$pkg/testdata/fuzz/$$name; \
		echo "fuzz $$pkg $$name for $(SHORTFUZZ)"; \
		before=$$(ls $$dir 2>/dev/null | wc -l); \
		if ! $(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(SHORTFUZZ) $$pkg; then \
			after=$$(ls $$dir 2>/dev/null | wc -l); \
			if [ "$$after" != "$$before" ]; then echo "fuzz $$name: a failing input was written to $$dir"; exit 1; fi; \
			echo "fuzz $$name: failed without a failing input (the fuzz coordinator's deadline race); once more"; \
			$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(SHORTFUZZ) $$pkg || exit 1; \
		fi; \
	done

fuzz:
	@$(MAKE) --no-print-directory fuzz-short SHORTFUZZ=$(FUZZTIME)

# 100 M commands against the reference model (about 35 minutes here since
# the model covers stops, icebergs, expiry and phases).
diff-long:
	$(GO) test -count=1 -run TestDifferential -timeout 2h -v ./engine -diff.commands=100000000

# SIGKILL a process running the durable pipeline CRASH_ITERATIONS times and
# check every acknowledged command survives (make test runs 3).
crashtest:
	CRASH_ITERATIONS=$(CRASH_ITERATIONS) $(GO) test -count=1 -run '^TestCrash$$' -v -timeout 30m ./pipeline/ | grep -v '^=== RUN'

# Engine and ring benchmarks (COUNT runs each); the pipeline's are heavier
# and run once each. Commands for single benchmarks: docs/BENCHMARKS.md.
# The adversarial and disk-fault suites at full size against a live matchd
# on loopback (make test runs them smaller). Bounded: about 45 seconds here.
attack:
	ATTACK=long $(GO) test -count=1 -run '^Test(Attack|DiskFault|DiskFull|ConfigDisagrees)' -v -timeout 30m ./cmd/matchd/ | grep -v '^=== RUN'

# Exactly-once under chaos at full size: 4 sessions trading with each other
# while connections are dropped on both sides (over 1,000 times), the server
# is SIGKILLed and restarted (25 times) and clients are killed and resumed
# from their last message number; every session's stream as its client saw
# it must equal the journal's. About 3 minutes (make test runs 12 s of it).
chaos:
	CHAOS=long $(GO) test -count=1 -run '^TestChaosExactlyOnce$$' -v -timeout 30m ./cmd/matchd/ | grep -v '^=== RUN'

# The replicated cluster under leader kills: 3 processes, 30 SIGKILLs of the
# leader under load (the short form, 3 kills, runs in make test).
cluster-chaos:
	CLUSTER=long $(GO) test -count=1 -run '^TestCluster' -v -timeout 30m ./cmd/matchd/ | grep -v '^=== RUN'

# matchload starts a fresh matchd of its own on a temporary data directory,
# runs the load, prints the parameters and the table, writes result.json,
# latency.svg and the .hgrm files to LOADTEST_OUT, stops the server; fails
# if verification failed.
loadtest:
	$(BUILD) -o bin/matchd ./cmd/matchd
	$(BUILD) -o bin/matchload ./cmd/matchload
	./bin/matchload --matchd bin/matchd --fsync=$(FSYNC) --rate $(RATE) --duration $(DURATION) --out $(LOADTEST_OUT)

# The latency report: floors (loopback ping-pong, fdatasync) and a fresh
# matchd (fsync on, then off, then a three-node cluster with fsync on)
# measured in one run, LATENCY_RUNS times: one order in flight, open loop
# at several rates, capacity at p99 <= 2 ms (LATENCY_FLAGS=--cluster=false
# leaves the cluster out).
# Prints every figure beside its floor, writes LATENCY_OUT/result.json and
# LATENCY_OUT/latency.svg. LATENCY_FLAGS passes more (see cmd/matchlat).
LATENCY_RUNS ?= 3
LATENCY_OUT  ?= ./latency-out
LATENCY_FLAGS ?=
latency:
	$(BUILD) -o bin/matchd ./cmd/matchd
	$(BUILD) -o bin/matchlat ./cmd/matchlat
	./bin/matchlat --matchd bin/matchd --runs $(LATENCY_RUNS) --out $(LATENCY_OUT) $(LATENCY_FLAGS)

# make peers: the engine against the public Go order books
# (github.com/geseq/orderbook, github.com/fmstephe/matching_engine, and
# when given github.com/i25959341/orderbook and
# github.com/0x5487/matching-engine) on workloads A, B and C, PEER_ROUNDS
# interleaved rounds; their sources come from PEERS_GESEQ[_GIT],
# PEERS_FMSTEPHE[_GIT], PEERS_I25959341[_GIT] and PEERS_X5487[_GIT] (see
# scripts/peers.sh).
PEER_ROUNDS ?= 5
peers:
	ROUNDS=$(PEER_ROUNDS) scripts/peers.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count $(COUNT) ./engine/ ./internal/ring/
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./pipeline/ ./persist/

lint: vet
	$(GO) run $(STATICCHECK) ./...
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed:"; gofmt -l .; exit 1)
