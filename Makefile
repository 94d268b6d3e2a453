# make demo: install into .venv and run the embedded default, ending with the report.
# make test: install the same way and run the tests.
# make lint: snakemake --lint, snakefmt --check and ruff check (each fails on a finding).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export YOLO_OFFLINE := 1
export YOLO_CONFIG_DIR := $(CURDIR)/.cache/ultralytics
CORES ?= all

.PHONY: install demo test lint rulegraph clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, alone: pip takes the pinned build from its cache or local index
	$(BIN)/pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -e '.[test]'
	mkdir -p $(YOLO_CONFIG_DIR)
	# ultralytics downloads Arial.ttf unless one is there: give it matplotlib's DejaVuSans
	cp $$($(BIN)/python -c "import matplotlib, os; print(os.path.join(os.path.dirname(matplotlib.__file__), 'mpl-data/fonts/ttf/DejaVuSans.ttf'))") $(YOLO_CONFIG_DIR)/Arial.ttf
	touch $@

demo: install
	$(BIN)/snakemake --cores $(CORES)
	@echo "report: results/report/report.html"

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# the workflow's lints, the .smk/Snakefile format and the Python lints: each fails on a finding
lint: install
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check .
	$(BIN)/ruff check .

rulegraph: install
	$(BIN)/snakemake --rulegraph --forceall

clean:
	rm -rf results .snakemake
