# Every target sets itself up on a fresh machine (venv in .venv, nginx via apt when root).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: test lint run bench bench-quick fuzz clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

lint: $(VENV)/.installed
	$(PY) -m ruff check protocol uwsgiapp tests bench
	$(PY) -m ruff format --check protocol uwsgiapp tests bench
	$(PY) -m mypy

test: $(VENV)/.installed
	./scripts/ensure-nginx.sh
	$(MAKE) lint
	$(PY) -m pytest -q

# Coverage-guided fuzzing of the decoder (atheris). FUZZ_SECONDS bounds the run.
FUZZ_SECONDS ?= 60
fuzz: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[fuzz]'
	$(PY) tests/fuzz/fuzz_decoder.py -max_total_time=$(FUZZ_SECONDS) tests/corpus/valid tests/corpus/invalid

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
