# Every target sets itself up on a fresh machine (venv in .venv, nginx via apt when root).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: test lint run bench bench-quick fuzz reliability clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q -e '.[fuzz]' || echo "atheris unavailable: the fuzz CI test will skip its atheris part"
	touch $@

lint: $(VENV)/.installed
	$(PY) -m ruff check protocol uwsgiapp tests bench scripts
	$(PY) -m ruff format --check protocol uwsgiapp tests bench scripts
	$(PY) -m mypy

test: $(VENV)/.installed
	./scripts/ensure-nginx.sh
	$(MAKE) lint
	$(PY) -m pytest -q

# The local stack: nginx in front of `uwsgiapp serve --workers 2` running the example app, on
# loopback, built from the same files as docker-compose.yml (scripts/stack.py). Ctrl-C stops it.
PORT ?= 8080
RUN_DIR ?= run
run: $(VENV)/.installed
	./scripts/ensure-nginx.sh
	$(PY) scripts/stack.py --port $(PORT) --run-dir $(RUN_DIR)

# Coverage-guided fuzzing of the decoder (atheris). FUZZ_SECONDS bounds the run.
FUZZ_SECONDS ?= 60
fuzz: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[fuzz]'
	$(PY) tests/fuzz/fuzz_decoder.py -max_total_time=$(FUZZ_SECONDS) tests/corpus/valid tests/corpus/invalid

# The reliability suite at its long size (live fuzzing, faults under load, slow clients, soak);
# writes docs/RELIABILITY.md. CI runs the same tests at a smaller size. RELIABILITY_ARGS='-k fuzz'
# runs a subset.
reliability: $(VENV)/.installed
	./scripts/ensure-nginx.sh
	$(PY) scripts/reliability.py $(RELIABILITY_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache

# Benchmarks (bench/run.py): wrk -> nginx -> {uwsgiapp, uWSGI, gunicorn}; writes bench/RESULTS.md
# and bench/results.png. The anchors live in their own venv so the test venv stays small.
BENCH_VENV ?= .bench-venv
define bench_setup
	./scripts/ensure-nginx.sh
	command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || \
		{ echo "wrk is required (Debian/Ubuntu: apt-get install wrk)" >&2; exit 1; }
	[ -x $(BENCH_VENV)/bin/python ] || $(PYTHON) -m venv $(BENCH_VENV)
	[ $(BENCH_VENV)/.installed -nt bench/requirements-anchors.txt ] || { \
		$(BENCH_VENV)/bin/pip install -q --upgrade pip && \
		$(BENCH_VENV)/bin/pip install -q -e . -r bench/requirements-anchors.txt && \
		touch $(BENCH_VENV)/.installed; }
endef

bench:
	$(bench_setup)
	$(BENCH_VENV)/bin/python bench/run.py $(BENCH_ARGS)

bench-quick:
	$(bench_setup)
	$(BENCH_VENV)/bin/python bench/run.py --quick $(BENCH_ARGS)
