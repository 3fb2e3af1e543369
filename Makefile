# Each target creates the virtual environment it needs, so a fresh clone needs only python3 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench clean venv orchestrators orchestrators-airflow orchestrators-dagster clean-orchestrators

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/posthog-insights demo

test: venv
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: venv
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The orchestrator examples run for real (docs/orchestrators.md): Airflow and Dagster each in a virtual
# environment of its own, as they pin conflicting versions of the same packages, beside this project.
# Not part of `make test`; CI runs it after it.
AIRFLOW_VENV := .venv-airflow
DAGSTER_VENV := .venv-dagster

$(AIRFLOW_VENV)/.installed: pyproject.toml examples/airflow/requirements.txt orchestrators/requirements.txt
	rm -rf $(AIRFLOW_VENV)
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet -e . \
		-r examples/airflow/requirements.txt -r orchestrators/requirements.txt
	touch $@

$(DAGSTER_VENV)/.installed: pyproject.toml examples/dagster/requirements.txt orchestrators/requirements.txt
	rm -rf $(DAGSTER_VENV)
	$(PYTHON) -m venv $(DAGSTER_VENV)
	$(DAGSTER_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DAGSTER_VENV)/bin/python -m pip install --quiet -e . \
		-r examples/dagster/requirements.txt -r orchestrators/requirements.txt
	touch $@

orchestrators-airflow: $(AIRFLOW_VENV)/.installed
	$(AIRFLOW_VENV)/bin/python -m pytest orchestrators/test_airflow.py

orchestrators-dagster: $(DAGSTER_VENV)/.installed
	$(DAGSTER_VENV)/bin/python -m pytest orchestrators/test_dagster.py

# both, even when the first fails; fails if either does
orchestrators:
	@rc=0; \
	$(MAKE) --no-print-directory orchestrators-airflow || rc=1; \
	$(MAKE) --no-print-directory orchestrators-dagster || rc=1; \
	exit $$rc

clean-orchestrators:
	rm -rf $(AIRFLOW_VENV) $(DAGSTER_VENV)
