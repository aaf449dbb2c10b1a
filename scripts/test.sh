#!/usr/bin/env bash
# The whole test suite against the real local Kafka broker, which is started here when none is running
# and left running (`scripts/kafka.sh stop` stops it). Arguments go to pytest: scripts/test.sh -m "not slow";
# without a test path among them, the suite is tests/.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/kafka.sh start

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
