# Every target sets itself up on a fresh machine (venv in .venv, nginx via apt when root).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: test test-pure suite-pure test-compiled test-versions lint run bench bench-quick fuzz reliability clean

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
# compiled build (mypyc) installed in its own venv; then a part of it on the other Pythons the
# machine has (test-versions). PYTEST_ARGS is passed to every run; RERUNS too: the two halves
# run at once (below), and a test that fails is run once more before it fails the run (the
# summary counts those reruns: a timing that only the load broke, or a real flake to mend).
RERUNS ?= --reruns 1
# `make test` runs the pure suite beside the other two (scripts/side-by-side.sh): about half the
# time of one after the other, as the suite mostly waits.
test: lint
	./scripts/ensure-nginx.sh
	./scripts/side-by-side.sh '$(MAKE) --no-print-directory suite-pure' \
		'$(MAKE) --no-print-directory test-compiled test-versions'

test-pure: lint suite-pure

suite-pure: $(VENV)/.installed
	./scripts/ensure-nginx.sh
	PYTEST_UWSGIAPP_BUILD=pure $(PY) -m pytest -q $(RERUNS) $(PYTEST_ARGS)

# The compiled build: `UWSGIAPP_COMPILE=1 pip install .` (compile or fail, not editable) in
# $(COMPILED_VENV), rebuilt when a source changes. Its run skips what does not depend on the
# build: the Docker tests (the image builds its own compiled wheel) and the packaging tests.
COMPILED_VENV ?= .venv-compiled
CPY := $(COMPILED_VENV)/bin/python
COMPILED_SOURCES := pyproject.toml setup.py build_backend/uwsgiapp_build.py \
	$(shell find uwsgiapp protocol -name '*.py' 2>/dev/null)

$(COMPILED_VENV)/.installed: $(COMPILED_SOURCES)
	[ -x $(CPY) ] || $(PYTHON) -m venv $(COMPILED_VENV)
	[ $(COMPILED_VENV)/.deps -nt pyproject.toml ] || { $(CPY) -m pip install -q --upgrade pip && \
		UWSGIAPP_COMPILE=0 $(CPY) -m pip install -q '.[test]' && touch $(COMPILED_VENV)/.deps; }
	UWSGIAPP_COMPILE=1 nice -n 10 $(CPY) -m pip install -q --force-reinstall --no-deps .
	touch $@

test-compiled: $(COMPILED_VENV)/.installed
	./scripts/ensure-nginx.sh
	PYTEST_UWSGIAPP_INSTALLED=1 PYTEST_UWSGIAPP_BUILD=compiled PYTHONSAFEPATH=1 \
		$(CPY) -m pytest -q -m "not docker and not packaging" $(RERUNS) $(PYTEST_ARGS)

# The Pythons at the ends of what the package supports (requires-python): for each one this
# machine has (scripts/other-pythons.sh), a compiled build in its own venv runs the part of the
# suite that depends on the Python version most (codec, environ, handler, config, CLI, the
# supervisor's decisions, real servers' logs and signals): about 3 minutes a version on a fresh
# machine. A version the machine lacks is said and skipped.
OTHER_VERSIONS ?= 3.10 3.13
VERSION_TESTS ?= tests/protocol tests/wsgi tests/server tests/config tests/cli tests/supervisor \
	tests/integration/test_log_rotation.py
test-versions:
	./scripts/ensure-nginx.sh
	for py in $$(./scripts/other-pythons.sh $(OTHER_VERSIONS)); do \
		venv=.venv-$$(basename $$py); \
		$(MAKE) --no-print-directory $$venv/.installed COMPILED_VENV=$$venv PYTHON=$$py && \
		(cd tests && PYTEST_UWSGIAPP_INSTALLED=1 PYTEST_UWSGIAPP_BUILD=compiled \
			../$$venv/bin/python -m pytest -q -m "not docker and not packaging" \
			$(addprefix ../,$(VERSION_TESTS)) $(RERUNS) $(PYTEST_ARGS)) || exit 1; \
	done

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
	rm -rf $(VENV) $(COMPILED_VENV) .venv-python3.* build *.egg-info .pytest_cache .mypy_cache .ruff_cache

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
