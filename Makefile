# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install lint i18n bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hub demo

# Three workers on two cores: about half of the suite waits (fake providers, worker
# processes, outages), so a third worker fills the gaps.
test: $(STAMP)
	$(BIN)/python -m pytest -n 3 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/render.py
	$(BIN)/python -W ignore bench/send.py
	$(BIN)/python bench/throttle.py

# Shared template strings (labels, plural phrases): extract from the catalog, layout and
# code into templates/locale/messages.pot, merge into each locale's .po (translate the new
# or fuzzy entries there), and compile the .mo files the renderer loads (committed).
I18N_LOCALES := pl en uk de
i18n: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _ -k gettext -k ngettext:1,2 --no-location \
		--omit-header -o templates/locale/messages.pot .
	for l in $(I18N_LOCALES); do \
		if [ -f templates/locale/$$l/LC_MESSAGES/messages.po ]; then \
			$(BIN)/pybabel update --no-fuzzy-matching -i templates/locale/messages.pot \
				-d templates/locale -l $$l; \
		else $(BIN)/pybabel init -i templates/locale/messages.pot -d templates/locale -l $$l; fi; \
	done
	$(BIN)/pybabel compile --statistics -d templates/locale

clean:
	rm -rf $(VENV) *.egg-info hub.db hub.db-*
