VENV ?= .venv
VENV_MIN ?= .venv-min
PIP := $(VENV)/bin/pip

.PHONY: venv demo test test-min lint docs clean wheelhouse gpu-check

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
	$(VENV)/bin/ruff check ssprop_energy tests benchmarks docs/scripts scripts examples
	$(VENV)/bin/ruff format --check ssprop_energy tests benchmarks docs/scripts scripts examples
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy

# Wheels that install the project offline on a machine with CPython $(PY) (docs/offline.md):
# `make wheelhouse PY=3.12`; PY defaults to this machine's Python, EXCLUDE names what the
# target already has (torch is always left out; EXCLUDE= keeps everything else).
PY ?= $(shell python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
EXCLUDE ?= scripts/target-has.txt
WHEELHOUSE ?= wheelhouse

wheelhouse: venv
	$(VENV)/bin/python scripts/wheelhouse.py --python-version $(PY) \
		--dest $(WHEELHOUSE) $(if $(EXCLUDE),--exclude-file $(EXCLUDE))

# The GPU validation (docs/offline.md): refuses without a CUDA GPU. On the GPU machine the
# interpreter is the one that holds torch (python3), here the project's venv.
GPU_PYTHON ?= $(if $(wildcard $(VENV)/bin/python),$(VENV)/bin/python,python3)
GPU_CHECK_OUT ?= gpu-check

gpu-check:
	$(GPU_PYTHON) scripts/gpu_check.py --out $(GPU_CHECK_OUT) --wheelhouse $(WHEELHOUSE)

docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) $(VENV_MIN) build site *.egg-info
