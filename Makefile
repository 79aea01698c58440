# Every target sets itself up on a fresh machine (venv in .venv, nginx via apt when root).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: test test-pure test-compiled lint run bench bench-quick fuzz reliability clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q -e '.[fuzz]' || echo "atheris unavailable: the fuzz CI test will skip its atheris part"
	touch $@

lint: $(VENV)/.installed
	$(PY) -m ruff check protocol uwsgiapp tests bench scripts build_backend setup.py
	$(PY) -m ruff format --check protocol uwsgiapp tests bench scripts build_backend setup.py
	$(PY) -m mypy

# The suite runs twice: against the sources (the editable install, pure Python) and against a
# compiled build (mypyc) installed in its own venv. PYTEST_ARGS is passed to both runs.
test: test-pure test-compiled

test-pure: $(VENV)/.installed
	./scripts/ensure-nginx.sh
	$(MAKE) lint
	PYTEST_UWSGIAPP_BUILD=pure $(PY) -m pytest -q $(PYTEST_ARGS)

# The compiled build: `UWSGIAPP_COMPILE=1 pip install .` (compile or fail, not editable) in
# $(COMPILED_VENV), rebuilt when a source changes. Its run skips what does not depend on the
# build: the Docker tests (the image builds its own compiled wheel) and the packaging tests.
COMPILED_VENV ?= .venv-compiled
CPY := $(COMPILED_VENV)/bin/python
COMPILED_SOURCES := pyproject.toml setup.py build_backend/uwsgiapp_build.py \
	$(shell find uwsgiapp protocol -name '*.py' 2>/dev/null)

$(COMPILED_VENV)/.installed: $(COMPILED_SOURCES)
	[ -x $(CPY) ] || $(PYTHON) -m venv $(COMPILED_VENV)
	[ -f $(COMPILED_VENV)/.deps ] || { $(CPY) -m pip install -q --upgrade pip && \
		UWSGIAPP_COMPILE=0 $(CPY) -m pip install -q '.[test]' && touch $(COMPILED_VENV)/.deps; }
	UWSGIAPP_COMPILE=1 nice -n 10 $(CPY) -m pip install -q --force-reinstall --no-deps .
	touch $@

test-compiled: $(COMPILED_VENV)/.installed
	./scripts/ensure-nginx.sh
	PYTEST_UWSGIAPP_INSTALLED=1 PYTEST_UWSGIAPP_BUILD=compiled PYTHONSAFEPATH=1 \
		$(CPY) -m pytest -q -m "not docker and not packaging" $(PYTEST_ARGS)

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
	rm -rf $(VENV) $(COMPILED_VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

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

# The benches run the compiled build (what `pip install` with a compiler and the Docker image
# give); `make bench BENCH_BUILD=` benches the pure-Python sources instead.
BENCH_BUILD ?= --uwsgiapp-python $(abspath $(CPY))

bench: $(COMPILED_VENV)/.installed
	$(bench_setup)
	$(BENCH_VENV)/bin/python bench/run.py --counts $(BENCH_BUILD) $(BENCH_ARGS)

bench-quick: $(COMPILED_VENV)/.installed
	$(bench_setup)
	$(BENCH_VENV)/bin/python bench/run.py --quick $(BENCH_BUILD) $(BENCH_ARGS)
