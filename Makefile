# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test deps soak bench eval fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

deps:
	scripts/system-deps.sh test

## run the relay on its embedded defaults, with a local clamd and a capture sink
run: $(STAMP)
	scripts/system-deps.sh run
	scripts/run-local.sh

## set up and run the whole test suite
test: deps $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) var .pytest_cache
