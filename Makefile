# Every target sets itself up: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast lint types check clean fuzz bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,plot,sparse]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install jaxdiff with its test tools

demo: $(STAMP)  ## the main job on an example spec: the seed polynomial's JVP and VJP
	$(BIN)/jaxdiff jvp configs/seed000_poly.yaml
	$(BIN)/jaxdiff vjp configs/seed000_poly.yaml

test: $(STAMP)  ## the test suite
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)  ## the test suite without the tests marked slow
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check jaxdiff_cli tests configs benchmarks
	$(BIN)/ruff format --check jaxdiff_cli tests configs benchmarks

types: $(STAMP)
	$(BIN)/mypy

check: lint types test  ## lint + types + tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

fuzz: $(STAMP)  ## property-based fuzzing with many more examples than CI runs
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q tests/inputs/test_fuzz.py

bench: $(STAMP)  ## jaxdiff vs hand-written JAX: prints the tables, writes benchmarks/results.json
	$(BIN)/python benchmarks/suite.py
	$(BIN)/python benchmarks/taylor.py
	$(BIN)/python benchmarks/calls.py
	$(BIN)/python benchmarks/report.py

.PHONY: bench-sparse
bench-sparse: $(STAMP)  ## --sparse vs asdex called directly and vs dense, n = 10^3 .. 10^6 (minutes): benchmarks/sparse_results.json
	$(BIN)/python benchmarks/sparse.py
	$(BIN)/python benchmarks/report.py

.PHONY: bench-ci
bench-ci: $(STAMP)  ## hundreds of specs in CI: check vs hand-written pytest, the plugin, memory, a moved cache (N = 25, 100, 300; long): benchmarks/ci_results.json
	$(BIN)/python benchmarks/ci_suite.py
	$(BIN)/python benchmarks/report.py
