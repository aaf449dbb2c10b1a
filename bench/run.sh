#!/usr/bin/env bash
# The benchmark of issue 6, one command:  bench/run.sh [--smoke] [--only 1,2,...]
#
# Uses .venv (scripts/setup.sh creates it), starts the local broker with `scripts/kafka.sh start` when
# none answers, and writes bench/results/latest.{json,md,png}. --smoke runs a tiny size that only checks
# that everything works (CI). STREAM_ANON_BOOTSTRAP_SERVERS points it at another broker.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  if [ -x scripts/setup.sh ]; then scripts/setup.sh; else echo "bench: .venv is missing" >&2; exit 2; fi
fi
# the naive peer's dependencies are the extra [bench], not the product's
if ! .venv/bin/python -c 'import presidio_anonymizer' 2>/dev/null; then
  echo "bench: installing the extra [bench] (pip install -e '.[bench]')" >&2
  .venv/bin/python -m pip install --quiet --progress-bar off -e '.[bench]'
fi
bootstrap="${STREAM_ANON_BOOTSTRAP_SERVERS:-}"
if [ -z "$bootstrap" ]; then
  if [ -x scripts/kafka.sh ]; then bootstrap="$(scripts/kafka.sh bootstrap)"; else bootstrap="127.0.0.1:9092"; fi
fi
broker_up() {
  .venv/bin/python -c 'import sys; from bench.topics import broker_answers; sys.exit(0 if broker_answers(sys.argv[1]) else 1)' "$bootstrap"
}
if ! broker_up; then
  if [ -x scripts/kafka.sh ]; then
    echo "bench: no broker answers at $bootstrap; scripts/kafka.sh start" >&2
    scripts/kafka.sh start >&2
  fi
  if ! broker_up; then
    echo "bench: no Kafka broker answers at $bootstrap" >&2
    exit 2
  fi
fi
export STREAM_ANON_BOOTSTRAP_SERVERS="$bootstrap"
exec .venv/bin/python -m bench.harness "$@"
