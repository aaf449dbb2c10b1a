#!/usr/bin/env bash
# The main job on the embedded default: local broker, demo topics, a few hundred realistic feedback
# records, the worker until the topic is drained, raw next to sanitized with the counts.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/kafka.sh start
exec .venv/bin/stream-anon demo "$@"
