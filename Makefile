VENV ?= .venv
VENV_MIN ?= .venv-min
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: venv demo test test-min lint docs clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/ssprop-energy profile examples/quickstart.yaml

test: venv
	$(VENV)/bin/python -m pytest -q

# The lowest supported versions: every lower bound in pyproject.toml, pinned by
# constraints/min.txt, in a venv of their own; torch is the tested 2.13.0.
$(VENV_MIN)/.installed: pyproject.toml constraints/min.txt
	rm -rf $(VENV_MIN)
	python3 -m venv $(VENV_MIN)
	$(VENV_MIN)/bin/pip install --quiet --upgrade pip
	$(VENV_MIN)/bin/pip install --quiet torch==2.13.0
	$(VENV_MIN)/bin/pip install --quiet --constraint constraints/min.txt -e '.[test]'
	touch $@

test-min: $(VENV_MIN)/.installed
	$(VENV_MIN)/bin/python -m pytest -q

lint: venv
	$(VENV)/bin/ruff check ssprop_energy tests benchmarks docs/scripts examples
	$(VENV)/bin/ruff format --check ssprop_energy tests benchmarks docs/scripts examples
	$(VENV)/bin/lint-imports --no-cache

docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) $(VENV_MIN) build site *.egg-info
