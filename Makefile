# Rampart: build, test, benchmark and run from source.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
LDFLAGS   := -s -w -X github.com/rampart-ips/rampart/internal/version.Version=$(VERSION)
BIN       := build/bin
BINARIES  := crowdsec cscli crowdsec-firewall-bouncer

.PHONY: all build test bench bench-go bench-lapi bench-fw bench-agent bench-replay bench-tail bench-flood bench-block bench-load bench-fleet bench-startup bench-capi demo run vet fmt clean deb

all: build

# Packages of the binaries (and the standard library) not yet in the build
# cache, for the build's flags; fails when a module is not downloaded yet.
STALE := CGO_ENABLED=0 $(GO) list -trimpath -ldflags '$(LDFLAGS)' -deps \
	-f '{{if and .Stale (ne .Name "main")}}{{.ImportPath}}{{end}}' ./cmd/...

# A first build downloads the modules and compiles ~400 packages, which
# takes minutes in silence: say so before, then name each binary.
build:
	@mkdir -p $(BIN)
	@if ! stale=$$(GOPROXY=off $(STALE) 2>/dev/null); then \
		echo "go: downloading modules (first build)..."; \
		$(GO) mod download && stale=$$($(STALE)) || exit 1; \
	fi; \
	n=$$(printf '%s' "$$stale" | grep -c .); \
	if [ "$$n" -gt 100 ]; then echo "go: compiling $$n packages (first build: a few minutes)..."; \
	elif [ "$$n" -gt 0 ]; then echo "go: compiling $$n packages..."; fi
	@for b in $(BINARIES); do \
		echo "go build $(BIN)/$$b"; \
		CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/$$b ./cmd/$$b || exit 1; \
	done

# tools/ is a module of its own (nfpm for mkdeb, chromedp for the dashboard's
# browser test), kept out of the binaries' module.
TOOLS     := tools

vet:
	$(GO) vet ./...
	$(GO) -C $(TOOLS) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# The whole suite: unit and integration tests (real SQLite files, real HTTP
# servers on loopback; netfilter tests run inside namespaces they create).
# The tools module's tests (mkdeb, the dashboard in Chromium; mkdeb's mostly
# wait on debootstrap and dpkg) and the hub functional tests (the hub, our
# rules, the whole-hub corpus) run beside the main suite, and so do the
# store's, the LAPI's and cscli's suites on PostgreSQL and on MySQL/MariaDB (each test
# on its own database; they skip when the server is unreachable, fail with
# RAMPART_REQUIRE_DB=1); each writes its own log, printed after the main
# suite's.
test: vet
	@mkdir -p build
	@$(GO) -C $(TOOLS) test -count=1 -timeout 14m ./... >build/test-tools.log 2>&1 & tools=$$!; \
	RAMPART_TEST_DB=postgresql $(GO) test -count=1 -timeout 14m ./lapi/store/ ./lapi/ ./cscli/ >build/test-postgresql.log 2>&1 & pg=$$!; \
	RAMPART_TEST_DB=mysql $(GO) test -count=1 -timeout 14m ./lapi/store/ ./lapi/ ./cscli/ >build/test-mysql.log 2>&1 & my=$$!; \
	{ $(GO) build -o build/test-cscli ./cmd/cscli && \
	  build/test-cscli hubtest run --hub ../shared/hub --all && \
	  build/test-cscli hubtest run --hub rules --all && \
	  build/test-cscli hubtest run --hub ../shared/hub-corpus --all --known-failures testdata/hub-corpus.known-failures; \
	} >build/test-hub.log 2>&1 & hubs=$$!; \
	$(GO) test -count=1 -timeout 14m ./...; main=$$?; \
	wait $$hubs; hub=$$?; echo "== hub functional tests (cscli hubtest)"; cat build/test-hub.log; \
	wait $$tools; rc=$$?; echo "== tools module ($(TOOLS)/)"; cat build/test-tools.log; \
	wait $$pg; pgrc=$$?; echo "== store, LAPI and cscli on PostgreSQL"; grep -v 'level=' build/test-postgresql.log; \
	wait $$my; myrc=$$?; echo "== store, LAPI and cscli on MySQL/MariaDB"; grep -v 'level=' build/test-mysql.log; \
	test $$main -eq 0 && test $$hub -eq 0 && test $$rc -eq 0 && test $$pgrc -eq 0 && test $$myrc -eq 0

# Go benchmarks beside the code, then whole-process LAPI figures.
bench: bench-go bench-lapi bench-fw bench-agent bench-replay bench-tail bench-flood bench-block bench-startup bench-capi

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 1x -timeout 30m ./...

bench-lapi: build
	$(GO) run ./internal/lapibench -bin $(BIN)

# 1,000 bouncers long-polling while 5,000 alerts/s are pushed for 60 s
# against one LAPI process on loopback: failed requests, p99 time from an
# alert's 201 to its decision at a bouncer, the LAPI's RSS.
bench-load: build
	$(GO) run ./internal/lapibench -bin $(BIN) -only load -bouncers 1000 -load-rate 5000 -load-for 60s

# Issue 16's Central API figures (about 10 s): a 100k-address community
# pull from the capitest Central API on loopback into a LAPI process on
# SQLite while 50 bouncers long-poll and an agent pushes 100 alerts/s:
# time until every bouncer holds the list, the pushes' worst and p99
# latency during the pull (a push over 1 s is a stall), the LAPI's peak
# RSS and CPU-s.
bench-capi: build
	$(GO) run ./internal/lapibench -bin $(BIN) -only capi -capi-decisions 100000 -capi-bouncers 50 -capi-rate 100

# The fleet figures (issue 15) on SQLite, PostgreSQL and MariaDB in one run,
# side by side: cscli decisions import of 1M values, the 1M startup stream
# from a restarted LAPI on an analyzed database, alert ingest through two
# LAPIs, 5,000 bouncers on two LAPIs for 60 s while a decision is added on
# the first every 2 s (each timed to 20 bouncers of the second; every
# decision wakes all 5,000), in follow mode then long-polling. SQLite runs one LAPI. Needs the local servers (127.0.0.1:5432 postgres, :3306 root);
# its databases are created and dropped.
bench-fleet: build
	$(GO) run ./internal/lapibench -bin $(BIN) -db sqlite,postgresql,mysql -lapis 2 -only import,stream,ingest,load \
		-bouncers 5000 -load-rate 0.5 -load-batch 1 -load-sample 1 -load-for 60s -load-mode follow,longpoll

# The firewall bouncer in a network namespace fwbench creates (needs root;
# never touches the host's firewall).
bench-fw: build
	$(GO) run ./internal/fwbench -bin $(BIN) -mode nftables
	$(GO) run ./internal/fwbench -bin $(BIN) -mode iptables -latency 0

# The detection engine replaying 1M generated sshd and 1M nginx lines through
# the hub's rules, once with 1 parse worker and once with 2 (same alerts).
bench-agent:
	$(GO) run ./internal/agentbench -hub ../shared/hub -n 1000000 -workers 2

# The daemon's start with every item of the whole-hub corpus enabled at
# once: time from exec to READY=1 (sd_notify, sent once the rules are
# loaded and the LAPI listens), CPU time and RSS then, the loader's own
# figures, and every item that failed to load (median of 5 starts).
bench-startup: build
	$(GO) run ./internal/startupbench -bin $(BIN) -hub ../shared/hub-corpus -runs 5

# The real daemon path on agentbench's logs: `crowdsec -dsn file://... -no-api`
# delivering to a LAPI process on a fresh SQLite file, beside agentbench's
# in-process figures (wall, CPU, RSS, alerts per scenario at the LAPI).
bench-replay: build
	@mkdir -p build/bench
	$(GO) build -o build/bench/agentbench ./internal/agentbench
	$(GO) run ./internal/replaybench -bin $(BIN) -agentbench build/bench/agentbench -hub ../shared/hub -n 1000000 -workers 2 -runs 2

# The agent live, tailing files with Rampart's rules: lines/s and RSS.
bench-tail:
	$(GO) run ./internal/tailbench -rules rules -n 200000

# Bucket memory under a flood of 200,000 distinct sources, one failed ssh
# login each, through rules/' ssh scenarios: without a cap on live buckets,
# then with the default one (max_buckets_per_scenario); peak heap and RSS,
# bytes per live bucket, and how long until the buckets are freed.
bench-flood:
	$(GO) run ./internal/floodbench -rules rules -sources 200000 -cap 100000

# Time from the log line that overflows a scenario to the first dropped
# packet, over 100 attacks, in network namespaces (needs root).
bench-block:
	$(GO) test ./e2e -run '^$$' -bench TimeToBlock -benchtime 1x -count 1 -timeout 10m

# Plays the seed's story in two network namespaces, step by step (root).
demo: build
	$(GO) build -o $(BIN)/demoweb ./internal/demoweb
	scripts/demo.sh

# Runs Rampart from the source tree in the foreground with an embedded
# SQLite under build/run. Ctrl-C stops it.
run: build
	./scripts/run.sh

# Debian packages crowdsec and crowdsec-firewall-bouncer (build/deb), from
# the binaries above; mkdeb turns VERSION into a Debian version.
deb: build
	$(GO) -C $(TOOLS) run ./mkdeb -root $(CURDIR) -version '$(VERSION)' -bin $(CURDIR)/$(BIN) -out $(CURDIR)/build/deb

clean:
	rm -rf build
