#!/usr/bin/env bash
# The benchmark of issue 6, one command:  bench/run.sh [--smoke] [--only 1,2,...]
# Uses .venv (scripts/setup.sh makes it), starts the local broker with scripts/kafka.sh when none answers,
# and writes bench/results/latest.{json,md,png}. --smoke: a tiny size that only checks that it all works.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  if [ -x scripts/setup.sh ]; then scripts/setup.sh; else echo "bench: .venv is missing" >&2; exit 2; fi
fi
export STREAM_ANON_BOOTSTRAP_SERVERS="${STREAM_ANON_BOOTSTRAP_SERVERS:-127.0.0.1:9092}"
broker_up() {
  .venv/bin/python - "$STREAM_ANON_BOOTSTRAP_SERVERS" <<'PY'
import sys
from bench.topics import broker_answers
sys.exit(0 if broker_answers(sys.argv[1], 5.0) else 1)
PY
}
if ! broker_up; then
  if [ -x scripts/kafka.sh ]; then
    echo "bench: no broker at $STREAM_ANON_BOOTSTRAP_SERVERS, starting one with scripts/kafka.sh" >&2
    scripts/kafka.sh start
  fi
  if ! broker_up; then
    echo "bench: no Kafka broker answers at $STREAM_ANON_BOOTSTRAP_SERVERS" >&2
    exit 2
  fi
fi
exec .venv/bin/python -m bench.harness "$@"
