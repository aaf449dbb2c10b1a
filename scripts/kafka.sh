#!/usr/bin/env bash
# A real single-node Apache Kafka (KRaft, combined broker+controller) for the demo, the tests and CI,
# built from Kafka's jars on Maven Central: no tarball, no Docker.
#
#   scripts/kafka.sh fetch            resolve the jars (once; again only when scripts/kafka/pom.xml changes)
#   scripts/kafka.sh start            a fresh, empty cluster, unless one is already running (then: readiness check)
#   scripts/kafka.sh stop             TERM, then KILL after KAFKA_STOP_TIMEOUT seconds; keeps the data
#   scripts/kafka.sh start-again      start on the data of the last cluster (after stop or kill)
#   scripts/kafka.sh restart [hard]   stop (hard: SIGKILL, an unclean crash) and start again on the same data
#   scripts/kafka.sh kill             SIGKILL the broker (unclean crash); keeps the data
#   scripts/kafka.sh status           exit 0 when the broker answers, 3 when it does not
#   scripts/kafka.sh bootstrap        print the bootstrap address
#   scripts/kafka.sh perf [N] [SIZE]  Kafka's own ProducerPerformance/ConsumerPerformance (raw broker ceiling)
#   scripts/kafka.sh start|stop|status|bootstrap --cluster
#                                     a separate three-node cluster with TLS, SCRAM and ACLs on ports 19092-19094
#                                     (scripts/kafka-cluster.sh; it never touches the single broker)
#
# Environment:
#   KAFKA_CACHE          jars and run directory (default: <repo>/.cache/kafka)
#   KAFKA_RUN            config, data, logs, pid file (default: $KAFKA_CACHE/run)
#   KAFKA_PORT, KAFKA_CONTROLLER_PORT   default 9092 and 9093, on 127.0.0.1
#   KAFKA_HEAP_OPTS      default -Xms256m -Xmx768m
#   KAFKA_START_TIMEOUT, KAFKA_STOP_TIMEOUT   seconds, default 120 and 60
#   KAFKA_HOME           an installed Kafka: its bin/kafka-storage.sh, kafka-server-start.sh, ... are used
#   STREAM_ANON_BOOTSTRAP_SERVERS or KAFKA_BOOTSTRAP_SERVERS
#                        a broker of your own: start only checks that it answers; stop/restart refuse
set -euo pipefail

for arg in "$@"; do
  if [ "$arg" = --cluster ]; then
    rest=()
    for a in "$@"; do [ "$a" = --cluster ] || rest+=("$a"); done
    exec "$(dirname "${BASH_SOURCE[0]}")/kafka-cluster.sh" "${rest[@]}"
  fi
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SAY_AS=kafka.sh
# shellcheck source=lib/kafka-common.sh
. "$REPO/scripts/lib/kafka-common.sh"
RUN="${KAFKA_RUN:-$CACHE/run}"
PORT="${KAFKA_PORT:-9092}"
CPORT="${KAFKA_CONTROLLER_PORT:-9093}"
OWN_BOOT="127.0.0.1:$PORT"
PROPS="$RUN/server.properties"
PIDFILE="$RUN/kafka.pid"
LOG="$RUN/logs/server.out"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-60}"
HEAP="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
CHECKED=""

# An address someone configured that is not our own broker's: we only ever check it.
EXTERNAL=""
for candidate in "${STREAM_ANON_BOOTSTRAP_SERVERS:-}" "${KAFKA_BOOTSTRAP_SERVERS:-}"; do
  case "$candidate" in
    "" | "$OWN_BOOT" | "localhost:$PORT") ;;
    *) EXTERNAL="$candidate"; break ;;
  esac
done
BOOT="${EXTERNAL:-$OWN_BOOT}"

# --- configuration ------------------------------------------------------------------------------------

write_config() {
  mkdir -p "$RUN/logs"
  cat >"$PROPS" <<PROPS
# written by scripts/kafka.sh: a single-node KRaft cluster for tests (replication factor 1 everywhere)
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$RUN/data
$(replication_properties 1 1 1)
$(test_broker_properties)
PROPS
  write_broker_log4j "$RUN" 3
}

format_storage() {
  local cluster_id
  say "formatting KRaft storage in $RUN/data"
  if [ -n "${KAFKA_HOME:-}" ]; then
    cluster_id="$("$KAFKA_HOME/bin/kafka-storage.sh" random-uuid)"
    "$KAFKA_HOME/bin/kafka-storage.sh" format -t "$cluster_id" -c "$PROPS" >"$RUN/logs/format.log" 2>&1 \
      || { cat "$RUN/logs/format.log" >&2; die "formatting failed"; }
  else
    cluster_id="$(java_tool kafka.tools.StorageTool random-uuid)"
    java_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS" >"$RUN/logs/format.log" 2>&1 \
      || { cat "$RUN/logs/format.log" >&2; die "formatting failed"; }
  fi
}

# --- the broker process -------------------------------------------------------------------------------

# The pid in our pid file, when that process is alive and is the broker started with our config.
our_pid() { broker_pid "$PIDFILE" "$PROPS"; }

ports_free() {
  if port_open "$OWN_BOOT" || port_open "127.0.0.1:$CPORT"; then
    die "port $PORT or $CPORT is taken by a process that is not our broker (pid file $PIDFILE);" \
      "stop it, or set KAFKA_PORT/KAFKA_CONTROLLER_PORT, or point STREAM_ANON_BOOTSTRAP_SERVERS at it"
  fi
}

launch() {
  ports_free
  say "starting the broker on $OWN_BOOT (controller 127.0.0.1:$CPORT), log $LOG"
  if [ -n "${KAFKA_HOME:-}" ]; then
    echo "==== $(date -u +%FT%TZ) start" >>"$LOG"
    # the launcher ends in `exec java`, so $! is the broker JVM itself. fd 9 (the lock) is not inherited.
    KAFKA_HEAP_OPTS="$HEAP" LOG_DIR="$RUN/logs" \
      "$KAFKA_HOME/bin/kafka-server-start.sh" "$PROPS" >>"$LOG" 2>&1 </dev/null 9>&- &
    echo $! >"$PIDFILE"
  else
    start_broker_jvm "$PROPS" "$RUN" "$LOG" "$PIDFILE" "$HEAP"
  fi
  wait_ready
}

# Without a Python client: the same round trip with Kafka's Java tools (slower, a JVM per step).
round_trip_java() {
  java_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOT" --create --if-not-exists \
    --topic _kafka_sh_ready --partitions 1 >/dev/null &&
    java_tool org.apache.kafka.tools.ProducerPerformance --topic _kafka_sh_ready --num-records 1 \
      --record-size 8 --throughput -1 --transactional-id "_kafka_sh_ready-$$-$RANDOM" \
      --producer-props bootstrap.servers="$BOOT" >/dev/null
}

round_trip() {
  local py
  if py="$(python_with)"; then
    CHECKED="produce, consume, group commit and a transaction work"
    client_round_trip "$py" --bootstrap "$BOOT" --topic _kafka_sh_ready
  else
    CHECKED="topic creation and a transactional produce work (Java tools: no Python client found)"
    round_trip_java
  fi
}

broker_alive() {  # dies when the broker we started exited
  local pid
  [ -z "$EXTERNAL" ] || return 0
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
    tail -40 "$LOG" "$RUN/logs/server.log" >&2 2>/dev/null || true
    rm -f "$PIDFILE"
    die "the broker exited during startup (log above; full log in $RUN/logs)"
  fi
}

broker_answers() { port_open "${BOOT%%,*}" && round_trip; }

wait_ready() {
  wait_until_ready "the broker at $BOOT" "$START_TIMEOUT" 1 "$RUN/logs/ready.err" broker_alive broker_answers
  say "ready: $BOOT after ${SECONDS}s ($CHECKED)"
}

stop_ours() {
  local pid
  if ! pid="$(our_pid)"; then
    rm -f "$PIDFILE"
    say "not running"
    return 0
  fi
  say "stopping the broker (pid $pid): TERM, KILL after ${STOP_TIMEOUT}s"
  local t0=$SECONDS
  if ! signal_and_wait "$pid" TERM "$STOP_TIMEOUT"; then
    say "still running after ${STOP_TIMEOUT}s: KILL"
    signal_and_wait "$pid" KILL 10 || die "pid $pid survived SIGKILL"
  fi
  rm -f "$PIDFILE"
  say "stopped ($((SECONDS - t0))s); data kept in $RUN/data"
}

kill_ours() {
  local pid
  pid="$(our_pid)" || { say "not running"; return 0; }
  say "killing the broker (pid $pid) with SIGKILL: an unclean crash"
  signal_and_wait "$pid" KILL 10 || die "pid $pid survived SIGKILL"
  rm -f "$PIDFILE"
}

refuse_external() {
  [ -z "$EXTERNAL" ] || die "$1: the broker at $EXTERNAL is not ours (STREAM_ANON_BOOTSTRAP_SERVERS/KAFKA_BOOTSTRAP_SERVERS)"
}

# Serialize start/stop across concurrent callers (tests of several sessions share one broker).
lock() { take_lock "$CACHE/.lock"; }

# --- subcommands --------------------------------------------------------------------------------------

cmd_fetch() { lock; fetch; }

cmd_start() {
  if [ -n "$EXTERNAL" ]; then
    say "using the broker at $EXTERNAL (not started here)"
    wait_ready
    return 0
  fi
  lock
  if our_pid >/dev/null; then
    say "already running (pid $(our_pid))"
    wait_ready
    return 0
  fi
  ports_free  # before wiping anything: a broker we lost track of may still run on this data
  fetch
  rm -rf "$RUN"
  write_config
  format_storage
  launch
}

cmd_start_again() {
  refuse_external start-again
  lock
  if our_pid >/dev/null; then
    say "already running (pid $(our_pid))"
    wait_ready
    return 0
  fi
  [ -f "$RUN/data/meta.properties" ] || die "no formatted data in $RUN/data; use: scripts/kafka.sh start"
  fetch
  launch
}

cmd_stop() {
  if [ -n "$EXTERNAL" ]; then
    say "the broker at $EXTERNAL is not ours: nothing to stop"
    return 0
  fi
  lock
  stop_ours
}

cmd_kill() { refuse_external kill; lock; kill_ours; }

cmd_restart() {
  refuse_external restart
  lock
  [ -f "$RUN/data/meta.properties" ] || die "no formatted data in $RUN/data; use: scripts/kafka.sh start"
  if [ "${1:-}" = hard ]; then kill_ours; else stop_ours; fi
  fetch
  launch
}

cmd_status() {
  local pid
  if [ -z "$EXTERNAL" ]; then
    if pid="$(our_pid)"; then say "running (pid $pid), $OWN_BOOT, data $RUN/data"; else say "not running (ours)"; fi
  fi
  if port_open "${BOOT%%,*}" && round_trip 2>/dev/null; then
    say "$BOOT answers"
    return 0
  fi
  say "$BOOT does not answer"
  return 3
}

cmd_bootstrap() { echo "$BOOT"; }

cmd_perf() {
  local n="${1:-1000000}" size="${2:-100}" topic="_kafka_sh_perf-$$-$RANDOM"
  [[ "$n" =~ ^[0-9]+$ && "$size" =~ ^[0-9]+$ ]] || die "usage: scripts/kafka.sh perf [RECORDS] [RECORD_SIZE]"
  fetch
  cmd_status >/dev/null || die "no broker answers at $BOOT; run: scripts/kafka.sh start"
  local producer_perf consumer_perf topics
  if [ -n "${KAFKA_HOME:-}" ]; then
    topics=("$KAFKA_HOME/bin/kafka-topics.sh")
    producer_perf=("$KAFKA_HOME/bin/kafka-producer-perf-test.sh")
    consumer_perf=("$KAFKA_HOME/bin/kafka-consumer-perf-test.sh")
  else
    topics=(java_tool org.apache.kafka.tools.TopicCommand)
    # measuring: the full JIT and the broker's collector, not the quick-start options of the other tools
    export TOOL_JVM_OPTS="-XX:+UseG1GC"
    producer_perf=(java_tool org.apache.kafka.tools.ProducerPerformance)
    consumer_perf=(java_tool org.apache.kafka.tools.ConsumerPerformance)
  fi
  "${topics[@]}" --bootstrap-server "$BOOT" --create --topic "$topic" --partitions 1 >/dev/null
  say "producing $n records of $size bytes to $topic (acks=all)"
  "${producer_perf[@]}" --topic "$topic" --num-records "$n" --record-size "$size" --throughput -1 \
    --producer-props bootstrap.servers="$BOOT" acks=all linger.ms=5 batch.size=131072
  say "consuming them back"
  "${consumer_perf[@]}" --bootstrap-server "$BOOT" --topic "$topic" --messages "$n" --timeout 60000
  "${topics[@]}" --bootstrap-server "$BOOT" --delete --topic "$topic" >/dev/null
}

usage() { usage_of "${BASH_SOURCE[0]}"; }

case "${1:-}" in
  fetch) cmd_fetch ;;
  start) cmd_start ;;
  start-again) cmd_start_again ;;
  stop) cmd_stop ;;
  kill) cmd_kill ;;
  restart) cmd_restart "${2:-}" ;;
  status) cmd_status ;;
  bootstrap) cmd_bootstrap ;;
  perf) shift; cmd_perf "$@" ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
