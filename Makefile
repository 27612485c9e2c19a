# Build and test the book.  On a fresh machine:
#     make book     # virtual environment, requirements, lib; every chapter executed and checked (two at a time),
#                   # then the HTML book assembled from those executions in _build/html/
#     make test     # pytest tests/ (unit and physics tests of lib), then pytest --nbval book/
#     make models   # the store of trained networks (models/): train what the current code and recipes lack
# Scale and device: LIB_SCALE=quick|paper, LIB_DEVICE=cpu|cuda|cuda:N (see README.md).
# GPU: `make venv TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126` first installs the
# CUDA build of the torch version pinned in requirements.txt (pick the CUDA variant that
# matches your driver), then everything else.

PYTHON ?= python3
VENV ?= .venv
TORCH_INDEX_URL ?=
# chapters executed at once by `make book` (pytest-xdist workers) and torch threads per chapter
WORKERS ?= 2
THREADS ?= 1
# The artefact cache of lib.cache: $LIB_CACHE_DIR if set, else .artefacts/ in the checkout.
CACHE_DIR := $(if $(LIB_CACHE_DIR),$(LIB_CACHE_DIR),.artefacts)

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv test test-lib test-book book models check-html clean clean-cache

help:
	@echo "make venv         create $(VENV), install requirements.txt and lib (pip install -e .)"
	@echo "make test         pytest tests/, then pytest --nbval book/ (every chapter and its checks)"
	@echo "make book         execute every chapter (two at a time), then build the HTML book into _build/html/"
	@echo "make models       train the networks the store lacks (two at a time) into models/, drop unneeded ones"
	@echo "make check-html   open every built page in headless Chromium, offline, and check it"
	@echo "make clean        remove _build/ (the book and its execution cache); keeps the artefacts"
	@echo "make clean-cache  remove the artefact cache ($(CACHE_DIR))"

venv: $(STAMP)

# (Re-)install whenever requirements.txt or pyproject.toml change.
$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
ifneq ($(strip $(TORCH_INDEX_URL)),)
	$(BIN)/python -m pip install "$$(grep -E '^torch==' requirements.txt)" --index-url $(TORCH_INDEX_URL)
endif
	$(BIN)/python -m pip install -r requirements.txt -r requirements-test.txt
	$(BIN)/python -m pip install -e .
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/pytest tests/
	$(BIN)/pytest --nbval book/

test-lib: $(STAMP)
	$(BIN)/pytest tests/

test-book: $(STAMP)
	$(BIN)/pytest --nbval book/

# The chapters run first, two at a time (their checks must hold); the collector keeps each execution in
# _build/.jupyter_cache, from which jupyter-book renders the pages without running the chapters again.
book: $(STAMP)
	LIB_THREADS=$(THREADS) $(BIN)/pytest --nbval book/ -n $(WORKERS) --dist loadfile -q
	$(BIN)/jupyter-book build . --all -n -W --keep-going
	test -f _build/html/index.html

# The store of trained networks (models/quick/, committed; LIB_SCALE=paper: models/paper/, not committed).
models: $(STAMP)
	$(BIN)/python tools/models.py --workers 2

check-html: $(STAMP)
	$(BIN)/python tests/browser/check_book.py _build/html

clean:
	rm -rf _build

clean-cache:
	@case "$(abspath $(CACHE_DIR))" in /|$(HOME)|$(CURDIR)) \
	  echo "refusing to remove $(CACHE_DIR)"; exit 1;; esac
	rm -rf "$(CACHE_DIR)"
