#!/usr/bin/env bash
# The whole test suite against the real local Kafka broker (started here if none is running, and left
# running; `scripts/kafka.sh stop` stops it). Extra arguments go to pytest: scripts/test.sh -m "not slow".
# When scripts/registry.sh exists, a local Schema Registry runs for the duration of the suite and its URL
# is in TEST_SCHEMA_REGISTRY_URL.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/kafka.sh start

registry_started=""
stop_registry() {
  if [ -n "$registry_started" ]; then scripts/registry.sh stop || true; fi
}
trap stop_registry EXIT
if [ -x scripts/registry.sh ]; then
  if ! scripts/registry.sh status >/dev/null 2>&1; then
    scripts/registry.sh start
    registry_started=1
  fi
  TEST_SCHEMA_REGISTRY_URL="$(scripts/registry.sh url)"
  export TEST_SCHEMA_REGISTRY_URL
fi

status=0
.venv/bin/python -m pytest tests -p no:cacheprovider "$@" || status=$?
if [ "$status" = 5 ]; then
  echo "test.sh: pytest collected no tests: that is a failure" >&2
  status=1
fi
exit "$status"
