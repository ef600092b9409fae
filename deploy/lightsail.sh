#!/usr/bin/env bash
# Deploy the callcenter-gp image to an Amazon Lightsail container service with the AWS CLI.
# Walk-through: lightsail-deployment.md. Run `deploy/lightsail.sh --help` for the usage.
#
# Needs: aws (CLI v2) with credentials, lightsailctl (for push), docker (for push),
# python3 (JSON parsing and rendering) and curl (the final /ready check).
set -euo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

SERVICE=${LIGHTSAIL_SERVICE:-callcenter-gp}
REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}
POWER=${LIGHTSAIL_POWER:-micro}
SCALE=${LIGHTSAIL_SCALE:-1}
LOCAL_IMAGE=${LIGHTSAIL_LOCAL_IMAGE:-callcenter-gp:latest}
LABEL=${LIGHTSAIL_LABEL:-app}
IMAGE_REF=${LIGHTSAIL_IMAGE:-}
ENV_FILE=${LIGHTSAIL_ENV_FILE:-}
TIMEOUT=${LIGHTSAIL_TIMEOUT:-900}
POLL_INTERVAL=${LIGHTSAIL_POLL_INTERVAL:-10}
STATE_DIR=${LIGHTSAIL_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/callcenter-gp}
RENDER_DIR=${LIGHTSAIL_RENDER_DIR:-}
CONTAINERS_TEMPLATE=${LIGHTSAIL_CONTAINERS_TEMPLATE:-$DEPLOY_DIR/containers.json}
ENDPOINT_TEMPLATE=${LIGHTSAIL_ENDPOINT_TEMPLATE:-$DEPLOY_DIR/public-endpoint.json}
ASSUME_YES=0
# Variables copied from the caller's environment into the container when set.
PASSTHROUGH_VARS=(ADMIN_TOKEN DATABASE_URL LOG_FORMAT WEB_CONCURRENCY)

usage() {
  cat <<EOF
Usage: deploy/lightsail.sh [options] <command>

Commands:
  create     create the container service unless it exists; wait until it is READY
  push       push the local image to the service and remember the image reference
             Lightsail returns (":<service>.<label>.<N>")
  deploy     render containers.json and public-endpoint.json, create the deployment,
             wait until it is ACTIVE, print the public URL and GET <url>/ready
  status     the service's state, URL and current/next deployment
  logs       the container's recent log lines
  images     the images registered on the service (what you can roll back to)
  teardown   delete the container service (asks first; --yes skips the question)
  help       this text

Options (environment variable in brackets):
  --service NAME       container service name [LIGHTSAIL_SERVICE] (default callcenter-gp)
  --region REGION      AWS region [AWS_REGION] (default us-east-1)
  --power SIZE         nano|micro|small|medium|large|xlarge [LIGHTSAIL_POWER] (default micro)
  --scale N            number of nodes, 1-20 [LIGHTSAIL_SCALE] (default 1)
  --local-image NAME   local Docker image to push [LIGHTSAIL_LOCAL_IMAGE] (default callcenter-gp:latest)
  --label LABEL        label for pushed images [LIGHTSAIL_LABEL] (default app)
  --image REF          image to deploy, e.g. ":callcenter-gp.app.3" for a rollback [LIGHTSAIL_IMAGE]
                       (default: the reference the last push returned)
  --env-file FILE      KEY=VALUE lines added to the container environment [LIGHTSAIL_ENV_FILE]
  --timeout SECONDS    how long create/deploy wait [LIGHTSAIL_TIMEOUT] (default 900)
  --yes                teardown without asking
Also: LIGHTSAIL_POLL_INTERVAL (seconds between polls, default 10), LIGHTSAIL_STATE_DIR
(where the last pushed reference is kept), LIGHTSAIL_RENDER_DIR (where the rendered JSON
goes; default a private temporary directory).
Copied into the container environment when set: ${PASSTHROUGH_VARS[*]}.
EOF
}

log() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed. $2"
}

# ls_aws ARGS...: `aws lightsail ARGS` in the chosen region, JSON output.
ls_aws() {
  aws lightsail "$@" --region "$REGION" --output json
}

# json_fields PROGRAM: run a Python expression over the JSON document on stdin.
# PROGRAM sees `doc` and prints with `out(...)`; absent values print as "-".
json_fields() {
  python3 -c '
import json, sys
doc = json.load(sys.stdin)
def out(*values):
    print("\t".join("-" if v in (None, "") else str(v) for v in values))
exec(sys.argv[1])
' "$1"
}

state_file() {
  printf '%s/%s.%s.image\n' "$STATE_DIR" "$SERVICE" "$REGION"
}

# service_json: get-container-services for our service; exit 2 when it does not exist.
service_json() {
  local err
  err=$(mktemp)
  if ls_aws get-container-services --service-name "$SERVICE" 2>"$err"; then
    rm -f "$err"
    return 0
  fi
  if grep -q NotFoundException "$err"; then
    rm -f "$err"
    return 2
  fi
  cat "$err" >&2
  rm -f "$err"
  die "aws lightsail get-container-services failed for $SERVICE in $REGION"
}

# service_summary JSON: tab-separated state, current version, current state,
# next version, next state, url.
service_summary() {
  json_fields '
s = doc["containerServices"][0]
cur = s.get("currentDeployment") or {}
nxt = s.get("nextDeployment") or {}
out(s.get("state"), cur.get("version"), cur.get("state"), nxt.get("version"), nxt.get("state"), s.get("url"))
' <<<"$1"
}

# poll_service: service_json for the wait loops. A service that vanished is fatal; any other
# AWS error (throttling, a network blip) is reported and the loop polls again ("-" state).
poll_service() {
  local status=0
  POLLED_JSON=$(service_json) || status=$?
  ((status != 2)) || die "container service $SERVICE no longer exists in $REGION"
  if ((status != 0)); then
    log "warning: get-container-services failed (above); polling again"
    POLLED_JSON='{"containerServices": [{}]}'
  fi
}

wait_for_service_ready() {
  local deadline=$((SECONDS + TIMEOUT)) state
  while :; do
    poll_service
    state=$(json_fields 'out(doc["containerServices"][0].get("state"))' <<<"$POLLED_JSON")
    case $state in
      READY | RUNNING)
        log "container service $SERVICE is $state"
        return 0
        ;;
      DISABLED | DELETING) die "container service $SERVICE is $state" ;;
    esac
    ((SECONDS < deadline)) || die "timed out after ${TIMEOUT}s waiting for $SERVICE to become READY (state $state)"
    log "container service $SERVICE is $state; waiting"
    sleep "$POLL_INTERVAL"
  done
}

cmd_create() {
  local json status=0
  json=$(service_json) || status=$?
  if ((status == 0)); then
    log "container service $SERVICE already exists in $REGION (state $(service_summary "$json" | cut -f1)); not creating it"
  elif ((status != 2)); then
    exit "$status" # service_json explained the failure
  else
    case $POWER in
      nano | micro | small | medium | large | xlarge) ;;
      *) die "--power must be nano, micro, small, medium, large or xlarge (got $POWER)" ;;
    esac
    if ! [[ $SCALE =~ ^[0-9]+$ ]] || ((SCALE < 1 || SCALE > 20)); then
      die "--scale must be 1-20 (got $SCALE)"
    fi
    log "creating container service $SERVICE in $REGION (power $POWER, scale $SCALE)"
    ls_aws create-container-service --service-name "$SERVICE" --power "$POWER" --scale "$SCALE" \
      --tags key=project,value=callcenter-gp >/dev/null
  fi
  wait_for_service_ready
}

cmd_push() {
  need docker "Run ./install-docker.sh first."
  need lightsailctl "Run ./install-lightsail-cli.sh first: push-container-image needs it."
  local arch
  arch=$(docker image inspect --format '{{.Architecture}}' "$LOCAL_IMAGE" 2>/dev/null) ||
    die "local image $LOCAL_IMAGE not found; build it first: docker build -t $LOCAL_IMAGE ."
  if [[ $arch != amd64 ]]; then
    log "warning: $LOCAL_IMAGE is built for $arch; Lightsail runs amd64 images (exec format error otherwise)."
    log "warning: rebuild with: docker buildx build --platform linux/amd64 -t $LOCAL_IMAGE --load ."
  fi
  log "pushing $LOCAL_IMAGE to $SERVICE with label $LABEL"
  local output ref
  output=$(mktemp)
  # lightsailctl prints progress and the reference as text, whatever --output says;
  # the progress is shown as it comes and kept for the reference.
  if ! aws lightsail push-container-image --region "$REGION" --service-name "$SERVICE" \
    --label "$LABEL" --image "$LOCAL_IMAGE" 2>&1 | tee "$output" >&2; then
    rm -f "$output"
    die "push-container-image failed (output above)"
  fi
  ref=$(sed -n 's/^Refer to this image as "\(:[^"]*\)" in deployments\..*$/\1/p' "$output" | tail -n 1)
  rm -f "$output"
  [[ -n $ref ]] || die "push-container-image did not say how to refer to the image"
  mkdir -p "$STATE_DIR"
  printf '%s\n' "$ref" >"$(state_file)"
  log "pushed image: $ref (saved to $(state_file))"
  printf '%s\n' "$ref"
}

# render_deployment IMAGE DIR: write DIR/containers.json and DIR/public-endpoint.json from the
# templates: ${IMAGE} replaced, pass-through variables and --env-file lines added to the
# environment (later wins: template < caller environment < env file).
render_deployment() {
  local image=$1 dir=$2 names=()
  local var
  for var in "${PASSTHROUGH_VARS[@]}"; do
    [[ -n ${!var:-} ]] && names+=("$var")
  done
  [[ -z $ENV_FILE || -r $ENV_FILE ]] || die "cannot read --env-file $ENV_FILE"
  (
    umask 077
    IMAGE="$image" ENV_FILE="$ENV_FILE" python3 - "$CONTAINERS_TEMPLATE" "$ENDPOINT_TEMPLATE" "$dir" "${names[@]}" <<'PY'
import json, os, re, sys

containers_template, endpoint_template, out_dir, *passthrough = sys.argv[1:]
image = os.environ["IMAGE"]

def substitute(value):
    if isinstance(value, str):
        return value.replace("${IMAGE}", image)
    if isinstance(value, dict):
        return {k: substitute(v) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v) for v in value]
    return value

with open(containers_template) as f:
    containers = substitute(json.load(f))
with open(endpoint_template) as f:
    endpoint = json.load(f)

extra = {name: os.environ[name] for name in passthrough}
env_file = os.environ.get("ENV_FILE")
if env_file:
    # Docker --env-file rules: KEY=VALUE, no quotes stripped, '#' lines are comments.
    with open(env_file) as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
                sys.exit(f"error: {env_file}:{number}: expected KEY=VALUE")
            extra[key.strip()] = value

name = endpoint["containerName"]
if name not in containers:
    sys.exit(f"error: public endpoint container {name!r} is not in {containers_template}")
containers[name].setdefault("environment", {}).update(extra)
port = str(endpoint["containerPort"])
if port not in containers[name].get("ports", {}):
    sys.exit(f"error: containerPort {port} is not open in {containers_template}")

for filename, doc in (("containers.json", containers), ("public-endpoint.json", endpoint)):
    with open(os.path.join(out_dir, filename), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
PY
  ) || die "could not render the deployment files"
}

# deployment_state VERSION: the state of that deployment version from the service's
# deployment history ("-" when not listed).
deployment_state() {
  ls_aws get-container-service-deployments --service-name "$SERVICE" | json_fields "
states = {str(d.get('version')): d.get('state') for d in doc.get('deployments', [])}
out(states.get('$1'))
"
}

wait_for_deployment() {
  local version=$1 deadline=$((SECONDS + TIMEOUT))
  local svc cur_v cur_s next_v next_s url state
  while :; do
    poll_service
    IFS=$'\t' read -r svc cur_v cur_s next_v next_s url < <(service_summary "$POLLED_JSON")
    if [[ $cur_v == "$version" ]]; then
      state=$cur_s
    elif [[ $next_v == "$version" ]]; then
      state=$next_s
    elif [[ $svc != - ]]; then
      # Neither current nor pending any more: it failed and Lightsail kept the old one.
      state=$(deployment_state "$version") || state=-
    else
      state=- # the poll itself failed
    fi
    case $state in
      ACTIVE)
        if [[ $svc == RUNNING ]]; then
          DEPLOYED_URL=$url
          log "deployment $version is ACTIVE"
          return 0
        fi
        ;;
      FAILED | INACTIVE)
        die "deployment $version of $SERVICE $state (service state $svc). The image did not become healthy on /ready; see: deploy/lightsail.sh --service $SERVICE --region $REGION logs"
        ;;
    esac
    ((SECONDS < deadline)) || die "timed out after ${TIMEOUT}s waiting for deployment $version of $SERVICE (deployment $state, service $svc); check: deploy/lightsail.sh --service $SERVICE logs"
    log "deployment $version is ${state/-/unknown} (service $svc); waiting"
    sleep "$POLL_INTERVAL"
  done
}

check_ready() {
  local url=${1%/}/ready attempt
  need curl "Install curl to check the deployed service."
  for attempt in 1 2 3; do
    if curl -fsS --max-time 10 "$url"; then
      echo
      log "GET $url answered 200"
      return 0
    fi
    ((attempt < 3)) && sleep "$POLL_INTERVAL"
  done
  die "deployment is ACTIVE but GET $url did not answer 200"
}

cmd_deploy() {
  local image=$IMAGE_REF
  if [[ -z $image ]]; then
    [[ -r $(state_file) ]] || die "no image to deploy: run 'push' first or pass --image :$SERVICE.$LABEL.<N>"
    image=$(<"$(state_file)")
  fi
  local dir=$RENDER_DIR
  if [[ -z $dir ]]; then
    dir=$(mktemp -d)
  else
    mkdir -p "$dir"
  fi
  render_deployment "$image" "$dir"
  log "rendered $dir/containers.json and $dir/public-endpoint.json (image $image)"
  local json version
  json=$(ls_aws create-container-service-deployment --service-name "$SERVICE" \
    --containers "file://$dir/containers.json" \
    --public-endpoint "file://$dir/public-endpoint.json") || die "create-container-service-deployment failed"
  version=$(json_fields '
s = doc["containerService"]
out((s.get("nextDeployment") or s.get("currentDeployment") or {}).get("version"))
' <<<"$json")
  [[ $version != - ]] || die "create-container-service-deployment returned no deployment version"
  log "created deployment $version; waiting up to ${TIMEOUT}s for it to become ACTIVE"
  wait_for_deployment "$version"
  printf 'URL: %s\n' "$DEPLOYED_URL"
  check_ready "$DEPLOYED_URL"
}

cmd_status() {
  local json status=0
  json=$(service_json) || status=$?
  ((status != 2)) || die "container service $SERVICE does not exist in $REGION"
  ((status == 0)) || exit "$status"
  json_fields '
s = doc["containerServices"][0]
region = (s.get("location") or {}).get("regionName", "?")
print("service:  %s (%s x %s) in %s" % (s.get("containerServiceName"), s.get("power"), s.get("scale"), region))
print("state:    %s" % s.get("state"))
print("url:      %s" % s.get("url"))
for key in ("currentDeployment", "nextDeployment"):
    d = s.get(key)
    if d:
        images = ", ".join(c.get("image", "?") for c in (d.get("containers") or {}).values())
        print("%s: version %s %s %s" % (key, d.get("version"), d.get("state"), images))
' <<<"$json"
}

cmd_logs() {
  local container
  container=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["containerName"])' "$ENDPOINT_TEMPLATE")
  ls_aws get-container-log --service-name "$SERVICE" --container-name "$container" | json_fields '
for event in doc.get("logEvents", []):
    print(event.get("createdAt"), event.get("message"))
'
}

cmd_images() {
  ls_aws get-container-images --service-name "$SERVICE" | json_fields '
for image in doc.get("containerImages", []):
    out(image.get("image"), image.get("createdAt"), image.get("digest"))
'
}

cmd_teardown() {
  if ((!ASSUME_YES)); then
    [[ -t 0 ]] || die "refusing to delete $SERVICE without --yes (not a terminal)"
    local answer
    read -r -p "Delete container service $SERVICE in $REGION and all its images? Type its name: " answer
    [[ $answer == "$SERVICE" ]] || die "not deleting"
  fi
  log "deleting container service $SERVICE in $REGION"
  ls_aws delete-container-service --service-name "$SERVICE" >/dev/null
  rm -f "$(state_file)"
  log "deleted; billing for it stops once the deletion finishes"
}

main() {
  local command=""
  while (($#)); do
    case $1 in
      -h | --help | help)
        usage
        return 0
        ;;
      --service) SERVICE=${2:?--service needs a value} && shift ;;
      --region) REGION=${2:?--region needs a value} && shift ;;
      --power) POWER=${2:?--power needs a value} && shift ;;
      --scale) SCALE=${2:?--scale needs a value} && shift ;;
      --local-image) LOCAL_IMAGE=${2:?--local-image needs a value} && shift ;;
      --label) LABEL=${2:?--label needs a value} && shift ;;
      --image) IMAGE_REF=${2:?--image needs a value} && shift ;;
      --env-file) ENV_FILE=${2:?--env-file needs a value} && shift ;;
      --timeout) TIMEOUT=${2:?--timeout needs a value} && shift ;;
      --yes) ASSUME_YES=1 ;;
      create | push | deploy | status | logs | images | teardown)
        [[ -z $command ]] || die "one command at a time (got $command and $1)"
        command=$1
        ;;
      *)
        usage >&2
        die "unknown argument: $1"
        ;;
    esac
    shift
  done
  [[ -n $command ]] || {
    usage >&2
    exit 2
  }
  [[ $TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout must be a whole number of seconds"
  need aws "Run ./install-aws-cli.sh first."
  need python3 "It parses the AWS CLI's JSON."
  "cmd_$command"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
