#!/usr/bin/env bash
# The whole test suite against the real local Kafka broker and Schema Registry, which are started here
# when they are not running and left running (`scripts/kafka.sh stop`, `scripts/registry.sh stop`). Arguments go to pytest: scripts/test.sh -m "not slow";
# without a test path among them, the suite is tests/.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/kafka.sh start
scripts/registry.sh start

where=(tests)
for arg in "$@"; do
  if [[ "$arg" != -* && -e "${arg%%::*}" ]]; then where=(); fi
done

status=0
.venv/bin/python -m pytest "${where[@]}" -p no:cacheprovider "$@" || status=$?
if [ "$status" = 5 ]; then
  echo "test.sh: pytest collected no tests, which counts as a failure" >&2
  status=1
fi
exit "$status"
