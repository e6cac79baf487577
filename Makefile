# Every target runs in .venv, built from uv.lock by `make install` (the same script CI uses).
BIN := .venv/bin

.PHONY: install lint type test bench soak docs screenshots latest all

install:
	bash .ci/setup

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

type:
	$(BIN)/mypy orchestrator workers config bench

test:
	$(BIN)/python -m pytest -q

bench:
	$(BIN)/python -m bench

# The long soaks: the nemesis for five minutes over 1,000 runs, and 5,000 runs with a worker restart.
soak:
	ORCH_NEMESIS_RUNS=1000 ORCH_NEMESIS_SECONDS=300 ORCH_SOAK_RUNS=5000 \
		$(BIN)/python -m pytest tests/reliability -q -s -k "nemesis or soak"

# The generated command and API references (tests/docs/test_cli_doc.py and test_api_doc.py check them).
docs:
	COLUMNS=100 $(BIN)/python -m typer orchestrator.cli.main utils docs --name orchestrator \
		--title "orchestrator: command reference" --output docs/cli-reference.md
	$(BIN)/python -m tests.docs.api_reference

# The README's pictures of the web UI (docs/img/*.png), taken in headless Chromium on a demo run.
screenshots:
	$(BIN)/python -m tests.ui.screenshots

# The newest releases of every dependency: refresh uv.lock, rebuild .venv from it, run the whole CI.
# Commit uv.lock when it passes.
latest:
	.ci/.uv/bin/uv lock --upgrade || (bash .ci/setup && .ci/.uv/bin/uv lock --upgrade)
	bash .ci/run

all: lint type test
