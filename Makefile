# callcenter-gp — everything starts here. `make run` trains (if needed) and serves; `make test` tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 5000
OUTPUT_DIR ?= Output
export OUTPUT_DIR PORT

.PHONY: help run serve train test lint sample-data bench-accuracy bench-serve docker-build docker-run clean

help:
	@echo "make run             set up .venv, train if $(OUTPUT_DIR)/manifest.json is missing, serve on :$(PORT)"
	@echo "make test            set up .venv with dev and bench tools, lint, run the whole test suite"
	@echo "make train           (re)train: python Engine.py"
	@echo "make bench-accuracy  accuracy benchmark vs ETS/ARIMA/Theta (writes Output/bench/)"
	@echo "make bench-serve     serving benchmark through gunicorn"
	@echo "make docker-build    build the image (trains inside the build); see lightsail-deployment.md"
	@echo "make docker-run      run the image on :$(PORT) (needs a Docker engine)"

# One stamp per requirements file: reinstall only when a pin changes.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

$(VENV)/.bench: requirements.txt requirements-dev.txt requirements-bench.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-bench.txt
	touch $@ $(VENV)/.dev $(VENV)/.runtime

$(OUTPUT_DIR)/manifest.json: | $(VENV)/.runtime
	$(BIN)/python Engine.py --output $(OUTPUT_DIR)

run: $(VENV)/.runtime $(OUTPUT_DIR)/manifest.json serve

serve: $(VENV)/.runtime
	$(BIN)/gunicorn -c gunicorn.conf.py app:app

train: $(VENV)/.runtime
	$(BIN)/python Engine.py --output $(OUTPUT_DIR)

sample-data: $(VENV)/.runtime
	$(BIN)/python -m MLPipeline.sample_data

lint: $(VENV)/.dev
	$(BIN)/ruff check .

# The bench requirements too: the accuracy benchmark's smoke runs (baselines, M1, M3) are tests.
test: $(VENV)/.bench lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench-accuracy: $(VENV)/.bench
	$(BIN)/python bench/accuracy.py $(BENCH_ARGS)

# wrk (Debian's package) is the serving benchmark's load generator; bench/serve.py falls back to a
# Python client where it cannot be installed (no apt-get, not root).
bench-serve: $(VENV)/.bench
	@command -v wrk >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || \
	  echo "wrk not installed: bench/serve.py uses its Python client"
	$(BIN)/python bench/serve.py $(BENCH_ARGS)

# Container image (lightsail-deployment.md): the build stage trains, so no local Output/ is used.
IMAGE ?= callcenter-gp:latest

docker-build:
	docker build -t $(IMAGE) .

docker-run:
	docker run --rm -p $(PORT):5000 --name callcenter-gp $(IMAGE)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
