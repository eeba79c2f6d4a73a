# Everything the project needs, from nothing: `make test` and `make run` create .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: test run install lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install when the dependencies change; the stamp keeps `make test` fast otherwise.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	$(BIN)/python -m pytest -n auto --dist loadfile $(PYTEST_ARGS)

run: $(VENV)/.installed
	$(BIN)/reconciler validate --repo example-repo --worktree
	$(BIN)/reconciler demo

bench: $(VENV)/.installed
	$(BIN)/python bench/validate_scale.py

# .demo: the demo's repositories, keys and logs (`make run` seeds it again).
clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .demo
