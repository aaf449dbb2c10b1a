# Helpers shared by scripts/kafka.sh (one broker) and scripts/kafka-cluster.sh (three nodes): the jars,
# Kafka's command-line tools, starting a broker JVM, its pid and ports, waiting until it answers a real
# client, and stopping it. Sourced, never run. The sourcing script sets, before sourcing:
#   SAY_AS   the name its messages start with
#   REPO     the repository; CACHE (jars, tools' log configuration) defaults to $REPO/.cache/kafka
# shellcheck shell=bash

KAFKA_LIB="$REPO/scripts/lib"
POM="$REPO/scripts/kafka/pom.xml"
CACHE="${KAFKA_CACHE:-$REPO/.cache/kafka}"
LIBS="$CACHE/libs"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

say() { echo "$SAY_AS: $*"; }
die() { echo "$SAY_AS: error: $*" >&2; exit 1; }

# The help text: the comment block at the top of the script, up to `set -euo`.
usage_of() { sed -n '2,/^set -euo/p' "$1" | sed -e '$d' -e 's/^# \{0,1\}//'; }

# Serialize start/stop across concurrent callers: fd 9 holds LOCKFILE until the script exits.
take_lock() {  # take_lock LOCKFILE
  mkdir -p "$(dirname "$1")"
  exec 9>"$1"
  flock -w 600 9 || die "another $SAY_AS held the lock $1 for 10 minutes"
}

# --- jars ---------------------------------------------------------------------------------------------

# Resolve Kafka's jars from Maven Central into $LIBS, once per version of scripts/kafka/pom.xml. Under a
# lock of its own (a subshell, so no broker started later inherits it): the single broker and the
# cluster may fetch at the same time.
fetch() {
  if [ -n "${KAFKA_HOME:-}" ]; then
    [ -x "$KAFKA_HOME/bin/kafka-server-start.sh" ] || die "KAFKA_HOME=$KAFKA_HOME has no bin/kafka-server-start.sh"
    return 0
  fi
  local stamp; stamp="$(sha256sum "$POM" | cut -c1-16)"
  [ -f "$LIBS/.resolved-$stamp" ] && return 0
  mkdir -p "$CACHE"
  (
    flock -w 900 8 || die "another fetch of the jars held $CACHE/.jars.lock for 15 minutes"
    [ -f "$LIBS/.resolved-$stamp" ] && exit 0
    resolve_jars "$stamp"
  ) 8>"$CACHE/.jars.lock" || exit 1
}

resolve_jars() {  # resolve_jars STAMP
  command -v mvn >/dev/null || die "Maven (mvn) is needed to resolve Kafka's jars from Maven Central"
  say "resolving Kafka jars from Maven Central with Maven (first run: a minute or two)..."
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
  touch "$LIBS/.resolved-$1"
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

# --- broker configuration ------------------------------------------------------------------------------

# Topics (num.partitions) and the internal topics with REPLICAS replicas, MIN_ISR of them in sync to
# acknowledge a write, the internal topics in PARTITIONS partitions.
replication_properties() {  # replication_properties REPLICAS MIN_ISR PARTITIONS
  cat <<PROPS
num.partitions=$3
default.replication.factor=$1
min.insync.replicas=$2
offsets.topic.replication.factor=$1
offsets.topic.num.partitions=$3
transaction.state.log.replication.factor=$1
transaction.state.log.min.isr=$2
transaction.state.log.num.partitions=$3
share.coordinator.state.topic.replication.factor=$1
share.coordinator.state.topic.min.isr=$2
PROPS
}

# What every test broker sets, one node or three.
test_broker_properties() {
  cat <<'PROPS'
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
}

# --- a broker process ---------------------------------------------------------------------------------

# The broker's log4j2 configuration: DIR/log4j2.properties, logging to DIR/logs/server.log, KEEP old files.
write_broker_log4j() {  # write_broker_log4j DIR KEEP
  mkdir -p "$1/logs"
  cat >"$1/log4j2.properties" <<L4J
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = $1/logs/server.log
appender.file.filePattern = $1/logs/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = $2
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

# Starts the broker JVM of PROPS in the background (log configuration and logs of write_broker_log4j DIR),
# its output appended to OUT, its pid written to PIDFILE. fd 9 (the lock) is not inherited.
start_broker_jvm() {  # start_broker_jvm PROPS DIR OUT PIDFILE HEAP [JVM OPTION...]
  local props=$1 dir=$2 out=$3 pidfile=$4 heap=$5
  shift 5
  echo "==== $(date -u +%FT%TZ) start" >>"$out"
  # shellcheck disable=SC2086  # heap is a list of JVM options
  "$JAVA" $heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError "$@" \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    -Dkafka.logs.dir="$dir/logs" -cp "$LIBS/*" kafka.Kafka "$props" >>"$out" 2>&1 </dev/null 9>&- &
  echo $! >"$pidfile"
}

# The pid in PIDFILE, when that process is alive and is the broker started with PROPS.
broker_pid() {  # broker_pid PIDFILE PROPS
  local pid
  [ -f "$1" ] || return 1
  pid="$(cat "$1")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka $2" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }  # port_open HOST:PORT

signal_and_wait() {  # signal_and_wait PID SIGNAL TIMEOUT_SECONDS: 1 when it still runs after that
  kill "-$2" "$1" 2>/dev/null || return 0
  local deadline=$((SECONDS + $3))
  while kill -0 "$1" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}

# --- readiness ----------------------------------------------------------------------------------------

# A Python with the Kafka client (and any other MODULE given), for the readiness round trip.
python_with() {  # python_with [MODULE...]
  local py module imports="confluent_kafka"
  for module in "$@"; do imports+=", $module"; done
  for py in "$REPO/.venv/bin/python" python3; do
    if command -v "$py" >/dev/null && "$py" -c "import $imports" 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  return 1
}

# One real client round trip (scripts/lib/kafka_ready.py): metadata, a replicated write read back, a group
# commit, a transaction.
client_round_trip() {  # client_round_trip PYTHON ARGS... (of kafka_ready.py)
  local py=$1
  shift
  "$py" "$KAFKA_LIB/kafka_ready.py" "$@"
}

# Ready means a client round trip succeeds, not that a port is open. Until then, every INTERVAL seconds:
# ALIVE (which dies with the log when a process we started exited) and READY ARGS (its errors to ERRFILE).
wait_until_ready() {  # wait_until_ready WHAT TIMEOUT INTERVAL ERRFILE ALIVE READY [ARGS...]
  local what=$1 timeout=$2 interval=$3 err=$4 alive=$5 ready=$6
  shift 6
  local deadline=$((SECONDS + timeout))
  mkdir -p "$(dirname "$err")"
  say "waiting for $what to answer (timeout ${timeout}s)"
  while :; do
    "$alive"
    if "$ready" "$@" 2>"$err"; then
      return 0
    fi
    if [ $SECONDS -ge $deadline ]; then
      cat "$err" >&2 || true
      die "$what did not answer within ${timeout}s"
    fi
    sleep "$interval"
  done
}
