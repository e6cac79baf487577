# Every target runs in .venv, built from uv.lock by `make install` (the same script CI uses).
BIN := .venv/bin

.PHONY: install lint type test bench soak latest all

install:
	bash .ci/setup

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

type:
	$(BIN)/mypy orchestrator workers config

test:
	$(BIN)/python -m pytest -q

bench:
	$(BIN)/python -m bench

# The newest releases of every dependency: refresh uv.lock, rebuild .venv from it, run the whole CI.
# Commit uv.lock when it passes.
latest:
	.ci/.uv/bin/uv lock --upgrade || (bash .ci/setup && .ci/.uv/bin/uv lock --upgrade)
	bash .ci/run

all: lint type test
