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
POM="$REPO/scripts/kafka/pom.xml"
CACHE="${KAFKA_CACHE:-$REPO/.cache/kafka}"
LIBS="$CACHE/libs"
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
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

say() { echo "kafka.sh: $*"; }
die() { echo "kafka.sh: error: $*" >&2; exit 1; }
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

# --- jars ---------------------------------------------------------------------------------------------

fetch() {
  if [ -n "${KAFKA_HOME:-}" ]; then
    [ -x "$KAFKA_HOME/bin/kafka-server-start.sh" ] || die "KAFKA_HOME=$KAFKA_HOME has no bin/kafka-server-start.sh"
    return 0
  fi
  local stamp; stamp="$(sha256sum "$POM" | cut -c1-16)"
  [ -f "$LIBS/.resolved-$stamp" ] && return 0
  command -v mvn >/dev/null || die "Maven (mvn) is needed to resolve Kafka's jars from Maven Central"
  say "resolving Kafka jars from Maven Central with Maven (first run: a minute or two)..."
  mkdir -p "$CACHE"
  local fresh="$CACHE/libs.new"
  rm -rf "$fresh"
  if ! mvn -B -ntp -Dstyle.color=never -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$fresh" >"$CACHE/mvn.log" 2>&1; then
    grep -E 'ERROR|BUILD' "$CACHE/mvn.log" >&2 || tail -30 "$CACHE/mvn.log" >&2
    die "mvn could not resolve the jars (full log: $CACHE/mvn.log)"
  fi
  ls "$fresh"/kafka_2.13-*.jar "$fresh"/kafka-tools-*.jar "$fresh"/log4j-slf4j-impl-*.jar >/dev/null \
    || die "resolved jars are incomplete"
  [ "$(find "$fresh" -name 'slf4j-api-*.jar' | wc -l)" = 1 ] || die "more than one slf4j-api jar resolved"
  # A broker may be running from the old directory: replace it only when the jars really differ.
  if [ -d "$LIBS" ] && diff -rq -x '.resolved-*' "$LIBS" "$fresh" >/dev/null 2>&1; then
    rm -rf "$fresh"
  else
    rm -rf "$LIBS.old"
    if [ -d "$LIBS" ]; then mv "$LIBS" "$LIBS.old"; fi
    mv "$fresh" "$LIBS"
    rm -rf "$LIBS.old"
  fi
  rm -f "$LIBS"/.resolved-*
  touch "$LIBS/.resolved-$stamp"
  say "jars cached in $LIBS ($(find "$LIBS" -name '*.jar' | wc -l) files)"
}

# java_tool CLASS ARGS...: a Kafka command-line tool (never the broker) in the foreground, warnings only
java_tool() {
  local l4j="$CACHE/log4j2-tools.properties"
  if [ ! -f "$l4j" ]; then
    mkdir -p "$CACHE"
    printf '%s\n' 'status = warn' 'appender.err.type = Console' 'appender.err.name = ERR' \
      'appender.err.target = SYSTEM_ERR' 'appender.err.layout.type = PatternLayout' \
      'appender.err.layout.pattern = %p %m (%c)%n' 'rootLogger.level = WARN' \
      'rootLogger.appenderRef.err.ref = ERR' >"$l4j"
  fi
  # shellcheck disable=SC2086  # TOOL_JVM_OPTS is a list of JVM options
  "$JAVA" -Xmx512m ${TOOL_JVM_OPTS--XX:+UseSerialGC -XX:TieredStopAtLevel=1} -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$l4j" -cp "$LIBS/*" "$@"
}

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
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# the worker creates or expects its topics; a typo must not create one silently
auto.create.topics.enable=false
# tests form groups and fence producers quickly
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
# producers may ask for transaction.timeout.ms up to 15 minutes
transaction.max.timeout.ms=900000
transaction.abort.timed.out.transaction.cleanup.interval.ms=5000
# small segments keep the data directory of a test cluster small
log.segment.bytes=67108864
log.retention.check.interval.ms=60000
PROPS
  cat >"$RUN/log4j2.properties" <<L4J
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = $RUN/logs/server.log
appender.file.filePattern = $RUN/logs/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
L4J
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
our_pid() {
  local pid
  [ -f "$PIDFILE" ] || return 1
  pid="$(cat "$PIDFILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka $PROPS" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }

ports_free() {
  if port_open "$OWN_BOOT" || port_open "127.0.0.1:$CPORT"; then
    die "port $PORT or $CPORT is taken by a process that is not our broker (pid file $PIDFILE);" \
      "stop it, or set KAFKA_PORT/KAFKA_CONTROLLER_PORT, or point STREAM_ANON_BOOTSTRAP_SERVERS at it"
  fi
}

launch() {
  ports_free
  say "starting the broker on $OWN_BOOT (controller 127.0.0.1:$CPORT), log $LOG"
  echo "==== $(date -u +%FT%TZ) start" >>"$LOG"
  # Both launchers end in `exec java`, so $! is the broker JVM itself. fd 9 (the lock) is not inherited.
  if [ -n "${KAFKA_HOME:-}" ]; then
    KAFKA_HEAP_OPTS="$HEAP" LOG_DIR="$RUN/logs" \
      "$KAFKA_HOME/bin/kafka-server-start.sh" "$PROPS" >>"$LOG" 2>&1 </dev/null 9>&- &
  else
    # shellcheck disable=SC2086  # HEAP is a list of JVM options
    "$JAVA" $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
      -Djava.awt.headless=true -Dlog4j2.configurationFile="$RUN/log4j2.properties" \
      -Dkafka.logs.dir="$RUN/logs" -cp "$LIBS/*" kafka.Kafka "$PROPS" >>"$LOG" 2>&1 </dev/null 9>&- &
  fi
  echo $! >"$PIDFILE"
  wait_ready
}

python_with_client() {
  local py
  for py in "$REPO/.venv/bin/python" python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import confluent_kafka' 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  return 1
}

# One real client round trip: metadata, create the check topic, produce and consume it back with a
# committed group offset (so __consumer_offsets exists), and a transactional produce (so
# __transaction_state exists and the transaction coordinator answers).
round_trip_python() {
  "$1" - "$BOOT" <<'PY'
import sys, time, uuid
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

boot = sys.argv[1]
topic, quiet = "_kafka_sh_ready", {"bootstrap.servers": boot, "log_level": 0}
admin = AdminClient(quiet)
md = admin.list_topics(timeout=10)
if not md.brokers:
    sys.exit("no brokers in the metadata")
if topic not in md.topics:
    try:
        admin.create_topics([NewTopic(topic, 1, -1)])[topic].result(15)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
delivered = []
p = Producer({**quiet, "acks": "all"})
p.produce(topic, b"ping", on_delivery=lambda err, msg: delivered.append((err, msg)))
if p.flush(15) or not delivered or delivered[0][0] is not None:
    sys.exit(f"produce failed: {delivered[0][0] if delivered else 'no delivery report'}")
offset = delivered[0][1].offset()
c = Consumer({**quiet, "group.id": "_kafka_sh_ready", "enable.auto.commit": False})
c.assign([TopicPartition(topic, 0, offset)])
msg, deadline = None, time.monotonic() + 15
while time.monotonic() < deadline:
    msg = c.poll(0.5)
    if msg is not None and not msg.error():
        break
if msg is None or msg.error() or msg.value() != b"ping":
    sys.exit("consume failed: the produced record did not come back")
c.commit(message=msg, asynchronous=False)
c.close()
# a transactional id of its own: concurrent checks must not fence each other
tp = Producer({**quiet, "transactional.id": f"_kafka_sh_ready-{uuid.uuid4().hex[:12]}"})
tp.init_transactions(30)
tp.begin_transaction()
tp.produce(topic, b"txn")
tp.commit_transaction(30)
PY
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
  if py="$(python_with_client)"; then
    CHECKED="produce, consume, group commit and a transaction work"
    round_trip_python "$py"
  else
    CHECKED="topic creation and a transactional produce work (Java tools: no Python client found)"
    round_trip_java
  fi
}

# Ready means a client round trip succeeds, not that the port is open.
wait_ready() {
  local deadline=$((SECONDS + START_TIMEOUT)) pid="" err="$RUN/logs/ready.err"
  if [ -z "$EXTERNAL" ]; then pid="$(cat "$PIDFILE")"; fi
  mkdir -p "$RUN/logs"
  say "waiting for the broker at $BOOT to answer (timeout ${START_TIMEOUT}s)"
  while :; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      tail -40 "$LOG" "$RUN/logs/server.log" >&2 2>/dev/null || true
      rm -f "$PIDFILE"
      die "the broker exited during startup (log above; full log in $RUN/logs)"
    fi
    if port_open "${BOOT%%,*}" && round_trip 2>"$err"; then
      say "ready: $BOOT after ${SECONDS}s ($CHECKED)"
      return 0
    fi
    if [ $SECONDS -ge $deadline ]; then
      cat "$err" >&2 || true
      die "the broker at $BOOT did not answer within ${START_TIMEOUT}s"
    fi
    sleep 1
  done
}

signal_and_wait() {  # signal_and_wait PID SIGNAL TIMEOUT_SECONDS
  kill "-$2" "$1" 2>/dev/null || return 0
  local deadline=$((SECONDS + $3))
  while kill -0 "$1" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
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
lock() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock -w 600 9 || die "another kafka.sh held the lock for 10 minutes"
}

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

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

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
