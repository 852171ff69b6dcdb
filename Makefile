# The two commands a newcomer runs: `make test` and (later) `make demo`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?= -n 2

.PHONY: test venv bench bench-eager clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Side-by-side eager overhead: taiji vs hand-written NumPy vs PyTorch (if installed).
bench-eager: $(VENV)/.installed
	$(PY) benchmarks/eager_overhead.py

# The side-by-side suite: installs the peers (PyTorch CPU, JAX) into the venv first.
bench: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/eager_overhead.py
	$(PY) benchmarks/mlp_train.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
