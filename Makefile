# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test deps soak soak-milter bench bench-smtp eval fuzz clean

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

## benchmarks (need the Debian packages of `make deps`; results go to bench/RESULTS.md by hand)
bench: deps $(STAMP)
	$(PY) bench/full.py

bench-smtp: deps $(STAMP)
	$(PY) bench/smtp_paths.py

## personal-data detection quality: precision/recall per type, side by side with Presidio
eval: $(STAMP)
	$(VENV)/bin/pip install -q -e '.[eval]'
	$(PY) bench/eval_pd.py

## the long fault-injection run (a short version runs in `make test`)
soak: deps $(STAMP)
	$(PY) -m tests.soak.run --messages 3000

## the same through a private Postfix with `relay milter` as its smtpd_milters
soak-milter: deps $(STAMP)
	$(PY) -m tests.soak.run --messages 1000 --front milter

## coverage-guided fuzzing of the MIME parser, bounded in time
fuzz: $(STAMP)
	$(VENV)/bin/pip install -q -e '.[fuzz]'
	fuzz/run.sh 60

clean:
	rm -rf $(VENV) var .pytest_cache
