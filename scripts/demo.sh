#!/usr/bin/env bash
# The main job on the embedded default: local broker, demo topics, a few hundred realistic feedback
# records, the worker until the topic is drained, raw next to sanitized with the counts.
# scripts/demo.sh --registry: the same through the real Schema Registry (Confluent framing).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/kafka.sh start
# --registry: through a local Schema Registry (scripts/registry.sh); --registry=URL: through that one
args=()
for arg in "$@"; do
  if [ "$arg" = --registry ]; then
    scripts/registry.sh start
    args+=(--registry "$(scripts/registry.sh url)")
  else
    args+=("$arg")
  fi
done
exec .venv/bin/stream-anon demo "${args[@]}"
