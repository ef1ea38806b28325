# The two commands of the README: `make run` and `make test`.
.PHONY: run test setup ingest chat ui eval bench load lint clean

VENV := .venv
RAG := $(VENV)/bin/rag

setup:
	@bash scripts/setup.sh

ingest: setup
	@$(RAG) ingest

run: setup
	@$(RAG) ui

chat: ingest
	@$(RAG) chat

test: setup
	@bash scripts/install-browser.sh
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/python -m pytest

eval: ingest
	@$(RAG) eval --qa evals/qa.jsonl --out eval-output

bench: setup
	@$(VENV)/bin/python -m benchmarks

load: setup
	@$(VENV)/bin/python -m benchmarks.load

lint: setup
	@$(VENV)/bin/ruff check .

clean:
	rm -rf .rag eval-output test-output benchmark-output
