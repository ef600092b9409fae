#!/usr/bin/env bash
# Run the callcenter-gp image on an EC2 (or any Docker) host: restart policy, port mapping,
# env file, optional mounted models, a named volume for the SQLite prediction log, and a
# wait for the image's HEALTHCHECK (/ready). Re-running replaces the container (update or
# rollback: pass the image tag you want). Walk-through: lightsail-deployment.md, "EC2".
set -euo pipefail

IMAGE=${EC2_IMAGE:-callcenter-gp:latest}
NAME=${EC2_CONTAINER_NAME:-callcenter-gp}
HOST_PORT=${EC2_HOST_PORT:-80}
ENV_FILE=${EC2_ENV_FILE:-/etc/callcenter-gp.env}
MODELS_DIR=${EC2_MODELS_DIR:-}
TIMEOUT=${EC2_HEALTH_TIMEOUT:-180}
POLL_INTERVAL=${EC2_HEALTH_POLL_INTERVAL:-3}
CONTAINER_PORT=5000

usage() {
  cat <<'EOF'
Usage: deploy/ec2-run.sh [options] [run|stop|status|logs]

  run      (default) start the image as a container, replacing one with the same name,
           and wait until Docker reports it healthy (GET /ready answers 200)
  stop     stop and remove the container (the data volume stays)
  status   container state and health
  logs     the last 200 log lines

Options (environment variable in brackets):
  --image NAME      image to run [EC2_IMAGE] (default callcenter-gp:latest)
  --name NAME       container name [EC2_CONTAINER_NAME] (default callcenter-gp)
  --port N          host port mapped to the container's 5000 [EC2_HOST_PORT] (default 80)
  --env-file FILE   docker --env-file with ADMIN_TOKEN, DATABASE_URL, ... [EC2_ENV_FILE]
                    (default /etc/callcenter-gp.env; skipped with a warning when missing)
  --models DIR      mount DIR read-only at /app/Output instead of the image's models [EC2_MODELS_DIR]
  --timeout SECONDS how long to wait for healthy [EC2_HEALTH_TIMEOUT] (default 180)
Also: EC2_HEALTH_POLL_INTERVAL (seconds between health polls, default 3).
EOF
}

log() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

container_exists() {
  docker container inspect "$NAME" >/dev/null 2>&1
}

# run_args: the full `docker run` argument list for the current settings.
run_args() {
  RUN_ARGS=(run --detach --name "$NAME"
    --restart unless-stopped
    --publish "$HOST_PORT:$CONTAINER_PORT"
    --volume "$NAME-data:/app/data"
    --log-opt max-size=10m --log-opt max-file=3)
  if [[ -r $ENV_FILE ]]; then
    RUN_ARGS+=(--env-file "$ENV_FILE")
  else
    log "warning: env file $ENV_FILE not found; running without ADMIN_TOKEN/DATABASE_URL"
  fi
  if [[ -n $MODELS_DIR ]]; then
    [[ -f $MODELS_DIR/manifest.json ]] || die "--models $MODELS_DIR has no manifest.json (train with: python Engine.py --output $MODELS_DIR)"
    RUN_ARGS+=(--volume "$(cd "$MODELS_DIR" && pwd):/app/Output:ro")
  fi
  RUN_ARGS+=("$IMAGE")
}

wait_healthy() {
  local deadline=$((SECONDS + TIMEOUT)) health
  while :; do
    health=$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$NAME")
    case $health in
      healthy)
        log "$NAME is healthy"
        return 0
        ;;
      unhealthy)
        docker logs --tail 50 "$NAME" >&2 || true
        die "$NAME is unhealthy: /ready did not answer 200 (last log lines above)"
        ;;
      none) die "$IMAGE has no HEALTHCHECK; is it the callcenter-gp image?" ;;
    esac
    ((SECONDS < deadline)) || {
      docker logs --tail 50 "$NAME" >&2 || true
      die "timed out after ${TIMEOUT}s waiting for $NAME to become healthy (status $health)"
    }
    sleep "$POLL_INTERVAL"
  done
}

cmd_run() {
  docker image inspect "$IMAGE" >/dev/null 2>&1 ||
    die "image $IMAGE not found on this host; build it (docker build -t $IMAGE .) or load it (docker load -i image.tar)"
  if container_exists; then
    log "replacing the running $NAME container"
    docker rm --force "$NAME" >/dev/null
  fi
  run_args
  log "docker ${RUN_ARGS[*]}"
  docker "${RUN_ARGS[@]}" >/dev/null
  wait_healthy
  log "serving on port $HOST_PORT: curl http://localhost:$HOST_PORT/ready"
}

cmd_stop() {
  if container_exists; then
    docker rm --force "$NAME" >/dev/null
    log "removed $NAME (volume $NAME-data kept)"
  else
    log "no container named $NAME; nothing to do"
  fi
}

cmd_status() {
  container_exists || die "no container named $NAME"
  docker inspect --format 'state={{.State.Status}} health={{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} image={{.Config.Image}} restarts={{.RestartCount}}' "$NAME"
}

cmd_logs() {
  docker logs --tail 200 "$NAME"
}

main() {
  local command=run
  while (($#)); do
    case $1 in
      -h | --help)
        usage
        return 0
        ;;
      --image) IMAGE=${2:?--image needs a value} && shift ;;
      --name) NAME=${2:?--name needs a value} && shift ;;
      --port) HOST_PORT=${2:?--port needs a value} && shift ;;
      --env-file) ENV_FILE=${2:?--env-file needs a value} && shift ;;
      --models) MODELS_DIR=${2:?--models needs a value} && shift ;;
      --timeout) TIMEOUT=${2:?--timeout needs a value} && shift ;;
      run | stop | status | logs) command=$1 ;;
      *)
        usage >&2
        die "unknown argument: $1"
        ;;
    esac
    shift
  done
  command -v docker >/dev/null 2>&1 || die "docker is not installed; run ./install-docker.sh"
  "cmd_$command"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
