.PHONY: install lint type test bench all

install:
	python3 -m pip install -e '.[dev]'

lint:
	ruff check .
	ruff format --check .

type:
	mypy orchestrator workers config

test:
	python3 -m pytest -q

bench:
	python3 -m bench

all: lint type test
