# callcenter-gp: GP call-volume forecasts served by gunicorn.
#
#   docker build -t callcenter-gp:latest .
#   docker run --rm -p 5000:5000 callcenter-gp:latest
#
# Build args:
#   TRAIN_MODELS=true   train the models from DATA_FILE during the build (default), so the
#                       image always carries models made by its own code; false ships no
#                       models: mount a trained Output/ at /app/Output (read-only is fine).
#   DATA_FILE           the data the build trains on, a path inside the build context
#                       (default Input/CallCenterData.xlsx: the synthetic sample, so the
#                       default image forecasts made-up data). Input/local/ is git-ignored:
#                       put your own file there.
#   ENGINE_ARGS         extra arguments for Engine.py (default --no-plots: figures are for
#                       the report, the service does not need them, and plotting is slow).

# ---- build: install the pinned requirements, train the models ----------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv
WORKDIR /app
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY MLPipeline/ MLPipeline/
COPY Engine.py ./
COPY Input/ Input/
ARG DATA_FILE=Input/CallCenterData.xlsx
# Also a file outside Input/ (anywhere in the context), at the same relative path.
COPY ${DATA_FILE} ${DATA_FILE}

ARG TRAIN_MODELS=true
ARG ENGINE_ARGS=--no-plots
# hadolint ignore=SC2086
RUN mkdir -p /app/Output && \
    if [ "$TRAIN_MODELS" = "true" ]; then \
        python Engine.py --data "$DATA_FILE" --output /app/Output $ENGINE_ARGS; \
    else \
        echo "TRAIN_MODELS=$TRAIN_MODELS: no models in the image; mount a trained Output/ at /app/Output"; \
    fi

# ---- runtime: the venv, the code the service needs, the trained models ---------------
FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib \
    PATH=/opt/venv/bin:$PATH \
    PORT=5000 \
    WEB_CONCURRENCY=2 \
    OUTPUT_DIR=/app/Output \
    PREDICTION_DB_DIR=/app/data

# A fixed non-root uid/gid, so a mounted volume's ownership can be set to match (10001).
RUN groupadd --system --gid 10001 app && \
    useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app && \
    mkdir -p /app/data && chown app:app /app/data

WORKDIR /app
COPY --from=build /opt/venv /opt/venv
# Code and models stay root-owned: the service user can read them, not change them.
COPY MLPipeline/ MLPipeline/
COPY service/ service/
# Engine.py too: the scheduled retrain (deploy/ec2-run.sh retrain) runs in this same image.
COPY app.py gunicorn.conf.py Engine.py ./
COPY --from=build /app/Output/ Output/

USER 10001:10001
EXPOSE 5000

# /ready is 200 only when the models are loaded and verified. Uses the image's own
# python3 (no curl in the slim image) and whatever PORT the container runs with.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ready' % os.environ.get('PORT', '5000'), timeout=4)"]

CMD ["gunicorn", "-c", "gunicorn.conf.py", "app:app"]
