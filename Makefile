# Everything the project needs, from nothing: `make test` and `make run` create .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: test run install lint bench bench-deps fuzz clean browser deploy-tools netns-tools

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install when the dependencies change; the stamp keeps `make test` fast otherwise.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	# xds-protos ships an old copy of the OpenTelemetry protos into the same package directory;
	# whichever pip unpacks last wins, so the real package is unpacked again, at the version resolved.
	$(BIN)/python -m pip install --quiet --force-reinstall --no-deps \
		"opentelemetry-proto==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')"
	touch $@

install: $(VENV)/.installed

# The GUI's browser tests drive Debian's Chromium through its ChromeDriver. Installed here when
# missing and this runs as root with apt; otherwise those tests skip and say why.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } || \
		echo "could not install chromium and chromium-driver: the GUI's browser tests will skip"; \
	else echo "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver): the GUI's browser tests will skip"; fi

# tests/deploy: podman (builds deploy/docker's images when the base image can be pulled) and
# systemd's tools (verify deploy/systemd's unit). Installed here when missing and this runs as
# root with apt; otherwise those tests skip and say why.
DEPLOY_TOOLS := podman buildah systemd
deploy-tools:
	@if command -v podman >/dev/null && command -v buildah >/dev/null && command -v systemd-analyze >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -q $(DEPLOY_TOOLS) >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $(DEPLOY_TOOLS) >/dev/null 2>&1; } || \
		echo "could not install $(DEPLOY_TOOLS): the image and systemd tests of tests/deploy will skip"; \
	else echo "$(DEPLOY_TOOLS) are not installed (apt-get install $(DEPLOY_TOOLS)): the image and systemd tests of tests/deploy will skip"; fi

# tests/netns: iproute2 (`ip netns`) and iptables make the network namespaces and the transparent
# proxy's redirect. Installed here when missing and this runs as root with apt; otherwise those
# tests skip and say why.
NETNS_TOOLS := iproute2 iptables
netns-tools:
	@if command -v ip >/dev/null && command -v iptables-restore >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -q $(NETNS_TOOLS) >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $(NETNS_TOOLS) >/dev/null 2>&1; } || \
		echo "could not install $(NETNS_TOOLS): the network-namespace tests of tests/netns will skip"; \
	else echo "$(NETNS_TOOLS) are not installed (apt-get install $(NETNS_TOOLS)): the network-namespace tests of tests/netns will skip"; fi

# Then every real-Envoy test again with every sidecar in the compact outbound shape
# (docs/xds.md, "Outbound shapes"); tests that compare both shapes themselves run once.
test: $(VENV)/.installed browser deploy-tools netns-tools
	$(BIN)/python -m pytest -n auto --dist loadfile $(PYTEST_ARGS)
	RECONCILER_COMPACT_OUTBOUNDS=1 $(BIN)/python -m pytest -n auto --dist loadfile -m "envoy and not both_shapes" $(PYTEST_ARGS)

# The layers (import-linter contracts in pyproject.toml), strict typing, and ruff's checks and format.
lint: $(VENV)/.installed
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/ruff check reconciler tests bench
	$(BIN)/ruff format --check reconciler tests bench

run: $(VENV)/.installed
	$(BIN)/reconciler validate --repo example-repo --worktree
	$(BIN)/reconciler demo

bench: $(VENV)/.installed
	$(BIN)/python bench/validate_scale.py

# sovereign (PyPI) for bench/envoy_outbounds.py, in a venv of its own: never a dependency of the project.
SOVEREIGN_VENV := bench/.venv-sovereign
bench-deps: $(SOVEREIGN_VENV)/bin/sovereign

$(SOVEREIGN_VENV)/bin/sovereign:
	$(PYTHON) -m venv $(SOVEREIGN_VENV)
	$(SOVEREIGN_VENV)/bin/python -m pip install --quiet 'sovereign==0.32.12'

# 10,000 fresh random cases per fuzz test (tests/fuzz/conftest.py; RECONCILER_FUZZ_EXAMPLES
# changes the count). A failure prints the seed and hypothesis' smallest failing case.
fuzz: $(VENV)/.installed
	RECONCILER_FUZZ_PROFILE=fuzz $(BIN)/python -m pytest -n 2 --dist load -p no:cacheprovider --hypothesis-show-statistics tests/fuzz $(PYTEST_ARGS)

# .demo: the demo's repositories, keys and logs (`make run` seeds it again).
clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .demo
