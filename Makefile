# callcenter-gp — everything starts here. `make run` trains (if needed) and serves; `make test` tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 5000
OUTPUT_DIR ?= Output
export OUTPUT_DIR PORT

.PHONY: help run serve train test lint sample-data bench-accuracy bench-frequency bench-serve bench-scale wrk docker-build docker-run vendor-js clean mlflow

help:
	@echo "make run             set up .venv, train if $(OUTPUT_DIR)/manifest.json is missing, serve on :$(PORT)"
	@echo "make test            set up .venv with dev and bench tools, lint, run the whole test suite"
	@echo "                     (with the PostgreSQL and MariaDB servers that answer on 127.0.0.1)"
	@echo "make train           (re)train: python Engine.py"
	@echo "make mlflow          the MLflow client in .venv (MLFLOW_TRACKING_URI) and a tracking server in $(MLFLOW_VENV)/"
	@echo "make bench-accuracy  accuracy benchmark vs ETS/ARIMA/Theta (writes Output/bench/)"
	@echo "make bench-frequency half-hourly/weekly accuracy and fit time vs n of the state-space GP"
	@echo "make bench-serve     serving benchmark through gunicorn"
	@echo "make bench-scale     training at 1,000 queues: local vs Dask vs AutoETS; service start-up and RSS"
	@echo "make docker-build    build the image (trains inside the build on DATA_FILE, default the sample)"
	@echo "make docker-run      run the image on :$(PORT), the prediction log in volume $(DATA_VOLUME)"
	@echo "                     (MODELS=dir serves a trained Output/ instead; see lightsail-deployment.md)"
	@echo "make vendor-js       re-fetch the dashboard's pinned charting library (uPlot) with npm"

# One stamp per requirements file: reinstall only when a pin changes.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dask.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

$(VENV)/.bench: requirements.txt requirements-dask.txt requirements-dev.txt requirements-bench.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-bench.txt
	touch $@ $(VENV)/.dev $(VENV)/.runtime

# MLflow: the client (mlflow-skinny) beside our pins; the full mlflow, whose server the tracking test
# starts, in a virtualenv of its own (it cannot be installed beside our gunicorn pin).
MLFLOW_VENV ?= .venv-mlflow

$(VENV)/.mlflow: requirements.txt requirements-mlflow.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-mlflow.txt
	touch $@

$(MLFLOW_VENV)/.installed: requirements-mlflow-server.txt
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/pip install --quiet -r requirements-mlflow-server.txt
	touch $@

mlflow: $(VENV)/.mlflow $(MLFLOW_VENV)/.installed

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
# tests/run-suite.sh uses the PostgreSQL and MySQL/MariaDB servers that answer on 127.0.0.1 and
# installs Chromium when it can (root, apt-get); it says what is missing, whose tests then skip.
test: $(VENV)/.bench mlflow lint
	bash tests/run-suite.sh $(BIN)/python $(PYTEST_ARGS)

bench-accuracy: $(VENV)/.bench
	$(BIN)/python bench/accuracy.py $(BENCH_ARGS)

bench-frequency: $(VENV)/.bench
	nice -n 10 $(BIN)/python bench/frequency.py $(BENCH_ARGS)

bench-scale: $(VENV)/.bench wrk
	nice -n 10 $(BIN)/python bench/scale.py $(BENCH_ARGS)

bench-serve: $(VENV)/.bench wrk
	$(BIN)/python bench/serve.py $(BENCH_ARGS)

# wrk (Debian's package) is the serving benchmarks' load generator: a C client leaves the cores to
# the server, where the Python fallback (no apt-get, not root) takes one of them itself.
wrk:
	@command -v wrk >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || \
	  echo "wrk not installed: the serving benchmarks use their Python client"

# Container image (lightsail-deployment.md): the build stage trains on DATA_FILE (a path in this
# directory; default Input/CallCenterData.xlsx, the synthetic sample), so no local Output/ is used.
# docker-run keeps the SQLite prediction log in a named volume (the same one deploy/ec2-run.sh
# uses), so it survives the container; MODELS=<dir> mounts a trained Output/ read-only instead of
# the image's models.
IMAGE ?= callcenter-gp:latest
DATA_FILE ?=
DATA_VOLUME ?= callcenter-gp-data
MODELS ?=

docker-build:
	docker build $(if $(DATA_FILE),--build-arg DATA_FILE=$(DATA_FILE)) -t $(IMAGE) .

docker-run:
	docker run --rm -p $(PORT):5000 --name callcenter-gp -v $(DATA_VOLUME):/app/data \
	  $(if $(MODELS),-v $(abspath $(MODELS)):/app/Output:ro) $(IMAGE)

# The dashboard's charting library, vendored into service/static/ so pages need no CDN and the image
# no Node.js. npm verifies the tarball against the registry's integrity hash; SHA256SUMS pins the files
# committed, so a changed download fails here instead of changing the dashboard silently. To upgrade:
# change UPLOT_VERSION, run `make vendor-js UPDATE_SUMS=1`, review the diff, run the browser tests.
UPLOT_VERSION := 1.6.32
UPLOT_DIR := service/static/vendor/uplot
vendor-js:
	@command -v npm >/dev/null || { echo "vendor-js needs npm (Debian: apt-get install npm)"; exit 1; }
	rm -rf .vendor-tmp && mkdir .vendor-tmp
	cd .vendor-tmp && npm pack --silent uplot@$(UPLOT_VERSION) >/dev/null && tar xzf uplot-$(UPLOT_VERSION).tgz
	mkdir -p $(UPLOT_DIR)
	cp .vendor-tmp/package/dist/uPlot.iife.min.js .vendor-tmp/package/dist/uPlot.min.css \
	  .vendor-tmp/package/LICENSE $(UPLOT_DIR)/
	rm -rf .vendor-tmp
	cd $(UPLOT_DIR) && $(if $(UPDATE_SUMS),sha256sum uPlot.iife.min.js uPlot.min.css LICENSE > SHA256SUMS,sha256sum -c SHA256SUMS)

clean:
	rm -rf $(VENV) $(MLFLOW_VENV) .pytest_cache .ruff_cache
