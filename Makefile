# The two commands a newcomer runs: `make test` and (later) `make demo`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?= -n 2

.PHONY: test venv bench bench-eager demo demo-data clean

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

# The side-by-side suite (benchmarks/suite.py; `taiji bench` runs the same): installs the
# peers (PyTorch CPU, JAX) into the venv first; 5-8 minutes on 2 cores. Options go in
# BENCH_ARGS, e.g. make bench BENCH_ARGS="--workloads mlp --reps 7".
BENCH_ARGS ?=
bench: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/suite.py $(BENCH_ARGS)

# Fashion-MNIST: already found by taiji, else the Debian package (apt, as root), else the
# official download (SHA-256 checked), else the sample committed in the package.
FIND_FMNIST := $(PY) -c "from taiji.datasets import FashionMNIST as F; F(train=True); F(train=False)"
demo-data: $(VENV)/.installed
	@if $(FIND_FMNIST) 2>/dev/null; then \
		echo "demo: Fashion-MNIST found"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
		apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 && $(FIND_FMNIST) 2>/dev/null; then \
		echo "demo: Fashion-MNIST installed from the Debian package dataset-fashion-mnist"; \
	elif $(PY) -c "from taiji.datasets import FashionMNIST as F; F(train=True, download=True); F(train=False, download=True)" 2>/dev/null; then \
		echo "demo: Fashion-MNIST downloaded into ~/.cache/taiji/fashion-mnist"; \
	else \
		echo "demo: Fashion-MNIST unavailable (no apt as root, no network): using the 2,000-image SAMPLE bundled with taiji; accuracy will be lower"; \
	fi

# The seed MLP on Fashion-MNIST, 3 epochs eager then 3 epochs jit; writes demo-mlp.png.
DEMO_EPOCHS ?= 3
demo: demo-data
	$(VENV)/bin/taiji train mlp --mode eager --epochs $(DEMO_EPOCHS) --metrics .demo-eager.jsonl --plot demo-mlp-eager.png
	$(VENV)/bin/taiji train mlp --mode jit --epochs $(DEMO_EPOCHS) --metrics .demo-jit.jsonl --plot demo-mlp.png
	@$(PY) -c "import json; print(); print('== make demo: the seed MLP on Fashion-MNIST, $(DEMO_EPOCHS) epochs =='); \
	[print(f'{m:>5}: test accuracy {r[-1][\"test_acc\"]:.4f}, {sum(x[\"train_time\"] for x in r):.1f} s training, {sum(x[\"steps_per_s\"]*x[\"train_time\"] for x in r)/sum(x[\"train_time\"] for x in r):.1f} steps/s') \
	 for m in ('eager', 'jit') for r in [[json.loads(l) for l in open(f'.demo-{m}.jsonl')]]]"
	@rm -f .demo-eager.jsonl .demo-jit.jsonl
	@echo "plots: demo-mlp.png (jit) and demo-mlp-eager.png (eager)"

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
