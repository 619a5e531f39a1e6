# Two set-up commands (see README): `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: the CPU wheel on this machine's disk (a bare `torch` would pull a CUDA build)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev,zoo]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/make_examples.py
	-$(BIN)/ranum check examples/softmax_regression.onnx --spec examples/ranges.json
	$(BIN)/ranum check examples/softmax_regression_fixed.onnx --spec examples/ranges.json

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check ranum tests benchmarks examples

bench: $(STAMP)
	$(BIN)/python benchmarks/check.py

clean:
	rm -rf $(VENV) examples/*.onnx benchmarks/out
