#!/usr/bin/env bash
# The test suite with whatever local services it can use; `make test` runs it (and CI through
# .ci/run, which starts the services first).
#
#   tests/run-suite.sh PYTHON [pytest arguments...]
#
# - A PostgreSQL server on 127.0.0.1:5432 (user postgres, database test) and a MySQL/MariaDB server
#   on 127.0.0.1:3306 (root, no password, database test) that accept a connection are exported as
#   TEST_DATABASE_URL and TEST_MYSQL_URL for the prediction-log tests. A value already set is kept
#   (point it elsewhere, or set it empty to leave that server out).
# - Chromium and chromedriver for the browser test, and promtool (Debian's prometheus package) for
#   the alert-rule test, are installed with apt-get when they are missing and this runs as root
#   where apt-get exists.
# What is missing is said before pytest starts; its tests skip (and fail under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."

if (($# < 1)); then
  echo "usage: tests/run-suite.sh PYTHON [pytest arguments...]" >&2
  exit 2
fi
PYTHON=$1
shift

DEFAULT_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test
DEFAULT_MYSQL_URL=mysql+pymysql://root@127.0.0.1:3306/test

note() { printf '==> %s\n' "$*"; }

# answers URL: the server behind URL accepts a connection and a query, within the log's own
# connect timeout (the same engine settings the service uses).
answers() {
  "$PYTHON" - "$1" >/dev/null 2>&1 <<'PY'
import sys

from service.store import create_engine, normalise_url

engine = create_engine(normalise_url(sys.argv[1]))
with engine.connect() as conn:
    conn.exec_driver_sql("SELECT 1")
engine.dispose()
PY
}

# use_server NAME VARIABLE DEFAULT_URL: export VARIABLE when its server answers.
use_server() {
  local name=$1 variable=$2 url=$3
  if [[ -n ${!variable+set} ]]; then
    if [[ -n ${!variable} ]]; then
      note "$name: $variable is already set; using it"
    else
      note "$name: $variable is set empty; its prediction-log tests skip"
    fi
  elif answers "$url"; then
    export "$variable=$url"
    note "$name answers on ${url#*@}: $variable=$url"
  else
    note "$name is not answering on ${url#*@}: its prediction-log tests skip"
  fi
}

use_server PostgreSQL TEST_DATABASE_URL "$DEFAULT_POSTGRES_URL"
use_server MySQL/MariaDB TEST_MYSQL_URL "$DEFAULT_MYSQL_URL"

# Debian packages some tests need: headless Chromium and its driver (tests/test_browser.py) and
# Prometheus's promtool (tests/test_alerts.py), installed when missing.
missing=()
[[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] || missing+=(chromium chromium-driver)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if ((${#missing[@]})); then
  if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    note "installing ${missing[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    note "${missing[*]} not installed (apt-get needs root): the browser and alert-rule tests skip"
  fi
fi

exec "$PYTHON" -m pytest "$@"
