# `make run` and `make test` work on a fresh Debian machine: each installs what it needs.
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)

.PHONY: run test lint clean

run:
	./scripts/bootstrap.sh
	$(UV) run --no-sync lightmail serve

test:
	./scripts/bootstrap.sh --dev
	./scripts/system-packages.sh
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .
	$(UV) run --no-sync mypy
	$(UV) run --no-sync pytest -n 2 --dist loadgroup

lint:
	$(UV) run --no-sync ruff check --fix .
	$(UV) run --no-sync ruff format .

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache .hypothesis
