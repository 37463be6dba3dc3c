# The two commands of the README: `make demo` and `make test`. Each sets up .venv itself
# (torch 2.14.1 + torchvision 0.29.1 pinned by constraints.txt) the first time.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dlcv-installed
DEMO_OUT ?= demo_out

.PHONY: demo test setup bench report clean-demo

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	$(PY) -m pip check
	touch $@

demo: $(STAMP)
	scripts/system-deps.sh --optional
	$(VENV)/bin/dlcv demo --out $(DEMO_OUT)

# the tests also run the graded scripts in the course's oldest inference env (graded-env.txt),
# built once by scripts/graded-env.sh and cached outside the checkout
test: $(STAMP)
	DLCV_GRADED_ENV_PYTHON="$$(scripts/graded-env.sh)" $(PY) -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/dlcv bench

clean-demo:
	$(PYTHON) -c "import shutil; shutil.rmtree('$(DEMO_OUT)', ignore_errors=True)"
