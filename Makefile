# Wrapix Builder. `make` lists the targets.
SHELL   := /bin/bash
VERSION := $(shell cat VERSION)
LDFLAGS := -X github.com/wrapix/wrapix-builder/builder/version.Version=$(VERSION) \
           -X github.com/wrapix/wrapix-builder/builder/version.ImageFlake=github:wrapix/wrapix-builder/v$(VERSION)
GO      ?= go

.DEFAULT_GOAL := help
.PHONY: help deps build test fuzz lint bench demo image app zip dmg install clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

deps: ## install what the tests and the demo need (Debian, as root; nothing when present)
	.ci/deps

build: ## build the CLI and the app for this machine, and the CLI for macOS (bin/)
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/wrapix-builder ./cmd/wrapix-builder
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/wrapix-builder-app ./app
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o bin/darwin-arm64/wrapix-builder ./cmd/wrapix-builder

lint: ## gofmt, go vet (linux and darwin), staticcheck, darwin cross-build, darwin+cgo type-check
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) vet ./...
	$(GO) tool staticcheck ./...
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/wrapix-builder
	$(GO) run ./internal/darwincheck ./...

test: deps lint ## install test dependencies if missing, lint, then every test (needs nix-bin, openssh, busybox-static and root: see .ci/run), then fuzz
	GO=$(GO) .ci/test
	@$(MAKE) --no-print-directory fuzz

# What parses the builder's output (untrusted: issue 16), package:target.
FUZZ     := ./builder/builds:FuzzRead ./builder/lifecycle:FuzzParseBusy ./builder/nixdaemon:FuzzHandshake ./builder/textclean:FuzzLine ./builder/textclean:FuzzTerminal
FUZZTIME ?= 3s
fuzz: ## fuzz each parser of the builder's output for FUZZTIME (default 3s), one worker each
	@for t in $(FUZZ); do echo "fuzz $$t ($(FUZZTIME))"; $(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) -parallel 1 "$${t%%:*}" || exit 1; done

bench: ## benchmarks, each printing its baseline measured in the same run (WRAPIX_IDLE: the app's idle window, default 5m)
	$(GO) test -run '^$$' -bench . -benchtime 1x ./app/
	$(GO) test -run '^$$' -bench . -benchtime 10x ./internal/...
	$(GO) test -run '^$$' -bench . -benchtime 1x ./builder/builds/
	$(GO) test -run '^$$' -bench PostBuildHook -benchtime 200x ./image/
	$(GO) test -run '^$$' -bench StoreDirectory -benchtime 1x -timeout 30m ./image/

app: ## assemble dist/Wrapix Builder.app (ad-hoc signed, and zipped, on macOS; for inspection elsewhere); IMAGE_ARCHIVE=tar bundles the builder image
	packaging/make-app.sh dist $(if $(filter Darwin,$(shell uname -s)),zip,)

zip: ## the app as a zip (macOS only: the app needs cgo)
	packaging/make-app.sh dist zip

dmg: ## the app as a .dmg (macOS only); IMAGE_ARCHIVE=$(nix build --print-out-paths .#builder-image) bundles the image
	packaging/make-app.sh dist dmg

PREFIX ?= /usr/local
install: build ## link the CLI onto PATH ($(PREFIX)/bin)
	install -d $(PREFIX)/bin
	ln -sf $(CURDIR)/bin/$(if $(filter Darwin,$(shell uname -s)),darwin-arm64/,)wrapix-builder $(PREFIX)/bin/wrapix-builder

clean: ## remove build output
	rm -rf bin dist

demo: deps ## the main job on Linux (as root): start the builder via the stand-in, build through it, status, stop
	internal/demo/demo.sh

image: ## build the builder image (OCI tar) with Nix: on a Mac no Linux builder is needed
	nix --extra-experimental-features 'nix-command flakes' build .#builder-image
