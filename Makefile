# The two commands a fresh machine needs (README): `make demo` and `make test`.
# Both create the environment first if it is missing (tools/setup_env.sh, idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= out/demo
export VENV
# Bytecode caching is on for every target even where the shell sets PYTHONDONTWRITEBYTECODE (this VM's image
# does): otherwise each of the suite's ~90 Python processes (and Ray's workers) compiles psi0's modules again, and
# every xdist worker re-runs pytest's assertion rewrite of every test file (collection: 11.9 CPU s without the
# cache, 6.0 with it). The dependencies' .pyc files are written at set-up (tools/warm_bytecode.py);
# __pycache__/ is git-ignored.
export PYTHONDONTWRITEBYTECODE :=

.PHONY: setup demo test test-fast bench clean
setup:
	@bash tools/setup_env.sh

demo: setup
	@bash tools/demo.sh "$(OUT)"

# Two passes: everything that does not time itself on both cores (pytest-xdist, one file per worker so
# module fixtures are built once; longest files first: tests/conftest.py LONGEST_FIRST), then the wall-clock
# tests (`timing` marker, tests/conftest.py) alone.
test: setup
	@$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --no-loadscope-reorder -m "not timing" --durations=25; a=$$?; \
	 $(PY) -m pytest -q -p no:cacheprovider -m timing; b=$$?; \
	 [ $$a -eq 0 ] && [ $$b -eq 0 ]

test-fast: setup
	@$(PY) -m pytest -q -m "not slow"

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf out sample .pytest_cache
