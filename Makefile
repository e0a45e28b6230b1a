# The two commands that matter:
#   make run    set up a virtual environment and serve the simulated QHY42PRO on port 7624
#   make test   install what the tests need (Debian packages included) and run them all
# Others: make lint, make bench, make install-driver (KStars catalogue entry + driver link).

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run test lint check-types unit bench venv system-deps install-driver clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

run: venv
	$(BIN)/qhy42-indi serve $(ARGS)

system-deps:
	scripts/install-system-deps.sh

lint: venv
	$(BIN)/ruff check qhy42_indi tests bench
	$(BIN)/mypy

test: system-deps venv lint
	$(BIN)/pytest -q $(ARGS)

unit: venv
	$(BIN)/pytest -q tests/indi tests/server tests/camera tests/backends tests/streaming tests/timing $(ARGS)

bench: system-deps venv
	$(BIN)/python -m bench.run $(ARGS)

# KStars lists drivers from /usr/share/indi/indi_*.xml and finds the executable on PATH.
install-driver: venv
	install -m 0644 drivers/indi_qhy42.xml /usr/share/indi/indi_qhy42.xml
	ln -sf $(abspath $(BIN))/indi_qhy42_ccd /usr/local/bin/indi_qhy42_ccd

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tests/clients/build tests/sdk_stub/build
