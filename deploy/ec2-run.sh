#!/usr/bin/env bash
# Run the callcenter-gp image on an EC2 (or any Docker) host: restart policy, port mapping,
# env file, optional mounted models, a named volume for the SQLite prediction log, and a
# wait for the image's HEALTHCHECK (/ready). Re-running replaces the container (update or
# rollback: pass the image tag you want). `retrain` runs Engine.py --actuals in the same image on
# the mounted models; `install-timer` installs the systemd service + timer that run it on a schedule.
# Walk-through: lightsail-deployment.md, "EC2".
set -euo pipefail

IMAGE=${EC2_IMAGE:-callcenter-gp:latest}
NAME=${EC2_CONTAINER_NAME:-callcenter-gp}
HOST_PORT=${EC2_HOST_PORT:-80}
ENV_FILE=${EC2_ENV_FILE:-/etc/callcenter-gp.env}
MODELS_DIR=${EC2_MODELS_DIR:-}
TIMEOUT=${EC2_HEALTH_TIMEOUT:-180}
POLL_INTERVAL=${EC2_HEALTH_POLL_INTERVAL:-3}
DATA_FILE=${EC2_RETRAIN_DATA:-}
ON_CALENDAR=${EC2_RETRAIN_CALENDAR:-*-*-03 03:00:00}
RETRAIN_ARGS=${EC2_RETRAIN_ARGS:---no-plots}
SYSTEMD_DIR=${EC2_SYSTEMD_DIR:-/etc/systemd/system}
CONTAINER_PORT=5000
UNITS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/systemd

usage() {
  cat <<'EOF'
Usage: deploy/ec2-run.sh [options] [run|stop|status|logs|retrain|install-timer]

  run      (default) start the image as a container, replacing one with the same name,
           and wait until Docker reports it healthy (GET /ready answers 200)
  stop     stop and remove the container (the data volume stays)
  status   container state and health
  logs     the last 200 log lines
  retrain  python Engine.py --data FILE --actuals in the image, writing into --models DIR (the
           directory the serving container mounts: it follows a published run without a restart);
           exit status as Engine.py's: 0 published, 3 kept as a candidate, 2 bad input, 1 output
  install-timer
           install callcenter-gp-retrain.service + .timer (deploy/systemd/) running `retrain` with
           these options, verify them (systemd-analyze), enable the timer

Options (environment variable in brackets):
  --image NAME      image to run [EC2_IMAGE] (default callcenter-gp:latest)
  --name NAME       container name [EC2_CONTAINER_NAME] (default callcenter-gp)
  --port N          host port mapped to the container's 5000 [EC2_HOST_PORT] (default 80)
  --env-file FILE   docker --env-file with ADMIN_TOKEN, DATABASE_URL, ... [EC2_ENV_FILE]
                    (default /etc/callcenter-gp.env; skipped with a warning when missing)
  --models DIR      mount DIR read-only at /app/Output instead of the image's models [EC2_MODELS_DIR]
  --timeout SECONDS how long to wait for healthy [EC2_HEALTH_TIMEOUT] (default 180)
  --data FILE       retrain: the data file on this host [EC2_RETRAIN_DATA]
  --on-calendar SPEC
                    install-timer: when to retrain [EC2_RETRAIN_CALENDAR] (default "*-*-03 03:00:00")
Also: EC2_HEALTH_POLL_INTERVAL (seconds between health polls, default 3), EC2_RETRAIN_ARGS (more
Engine.py arguments, default --no-plots), EC2_SYSTEMD_DIR (where units go, default
/etc/systemd/system; when set, systemctl is not called).
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

absolute() { printf '%s/%s' "$(cd "$(dirname "$1")" && pwd)" "$(basename "$1")"; }

cmd_retrain() {
  [[ -n $MODELS_DIR && -d $MODELS_DIR ]] || die "retrain needs --models DIR: the host directory the serving container mounts"
  [[ -n $DATA_FILE && -r $DATA_FILE ]] || die "retrain needs --data FILE, a readable data file on this host"
  docker image inspect "$IMAGE" >/dev/null 2>&1 || die "image $IMAGE not found on this host"
  local inside models status=0
  inside="/app/Input/retrain/$(basename "$DATA_FILE")"
  models=$(cd "$MODELS_DIR" && pwd)
  # The serving container's volumes: the models read-write here (the image's user, uid 10001, must
  # be able to write them), the SQLite prediction log whose actuals --actuals reads.
  local args=(run --rm --name "$NAME-retrain" --volume "$models:/app/Output" --volume "$NAME-data:/app/data"
    --volume "$(absolute "$DATA_FILE"):$inside:ro")
  [[ -r $ENV_FILE ]] && args+=(--env-file "$ENV_FILE")
  # shellcheck disable=SC2206 # EC2_RETRAIN_ARGS is a list of words by design
  args+=("$IMAGE" python Engine.py --data "$inside" --output /app/Output --actuals $RETRAIN_ARGS)
  log "docker ${args[*]}"
  docker "${args[@]}" || status=$?
  case $status in
    0) log "retrained: the new run is published" ;;
    3) log "retrained: the new run is kept as a candidate (worse than the served model; see the lines above)" ;;
    *) log "retrain failed with status $status; the served model is unchanged" ;;
  esac
  return "$status"
}

# unit_value NAME VALUE: VALUE if it is safe inside a unit file's ExecStart/OnCalendar line, else die.
unit_value() {
  [[ $2 =~ ^[A-Za-z0-9_./:@+,*\ -]+$ ]] || die "$1 '$2' has characters a systemd unit line cannot take as is"
  printf '%s' "$2"
}

cmd_install_timer() {
  [[ -n $MODELS_DIR && -d $MODELS_DIR ]] || die "install-timer needs --models DIR (what retrain writes into)"
  [[ -n $DATA_FILE && -r $DATA_FILE ]] || die "install-timer needs --data FILE (what retrain trains on)"
  local self args calendar unit
  self=$(unit_value "ec2-run.sh path" "$(absolute "${BASH_SOURCE[0]}")")
  args="--image $(unit_value --image "$IMAGE") --name $(unit_value --name "$NAME")"
  args+=" --env-file $(unit_value --env-file "$ENV_FILE") --models $(unit_value --models "$(cd "$MODELS_DIR" && pwd)")"
  args+=" --data $(unit_value --data "$(absolute "$DATA_FILE")")"
  calendar=$(unit_value --on-calendar "$ON_CALENDAR")
  mkdir -p "$SYSTEMD_DIR"
  for unit in callcenter-gp-retrain.service callcenter-gp-retrain.timer; do
    sed -e "s|@EC2_RUN@|$self|" -e "s|@RETRAIN_ARGS@|$args|" -e "s|@ON_CALENDAR@|$calendar|" \
      "$UNITS_DIR/$unit" >"$SYSTEMD_DIR/$unit.tmp"
    chmod 0644 "$SYSTEMD_DIR/$unit.tmp"
    mv "$SYSTEMD_DIR/$unit.tmp" "$SYSTEMD_DIR/$unit"
  done
  if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze verify "$SYSTEMD_DIR/callcenter-gp-retrain.service" "$SYSTEMD_DIR/callcenter-gp-retrain.timer" ||
      die "systemd-analyze verify refused the units in $SYSTEMD_DIR"
  fi
  log "installed callcenter-gp-retrain.service and .timer in $SYSTEMD_DIR (OnCalendar=$calendar)"
  if [[ -z ${EC2_SYSTEMD_DIR:-} ]]; then
    systemctl daemon-reload
    systemctl enable --now callcenter-gp-retrain.timer
    log "timer enabled: systemctl list-timers callcenter-gp-retrain.timer; run now: systemctl start callcenter-gp-retrain.service"
  fi
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
      --data) DATA_FILE=${2:?--data needs a value} && shift ;;
      --on-calendar) ON_CALENDAR=${2:?--on-calendar needs a value} && shift ;;
      run | stop | status | logs | retrain) command=$1 ;;
      install-timer)
        command=install_timer
        ;;
      *)
        usage >&2
        die "unknown argument: $1"
        ;;
    esac
    shift
  done
  [[ $command == install_timer ]] || command -v docker >/dev/null 2>&1 || die "docker is not installed; run ./install-docker.sh"
  "cmd_$command"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
