#!/usr/bin/env bash
# A real Confluent-API-compatible Schema Registry for the demo, the tests and CI: Apicurio Registry
# (Apache-2.0), whose runnable distribution is on Maven Central. No Docker. Storage is in memory, so every
# start is an empty registry, with BACKWARD compatibility (Confluent's default; Apicurio's own is NONE).
#
#   scripts/registry.sh fetch    resolve io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all (once)
#   scripts/registry.sh start    an empty registry on 127.0.0.1:$REGISTRY_PORT, unless one already answers
#                                there (ours or not: then it is used); waits until the ccompat API answers
#   scripts/registry.sh stop     TERM the registry we started, KILL after REGISTRY_STOP_TIMEOUT seconds
#   scripts/registry.sh status   exit 0 when the ccompat API answers, 3 when it does not
#   scripts/registry.sh url      print the URL clients take: schema_registry_url, confluent-kafka's "url"
#
# Environment:
#   REGISTRY_PORT          REST port on 127.0.0.1 (default 8081, Confluent's)
#   REGISTRY_MGMT_PORT     Quarkus management port (health, metrics), default REGISTRY_PORT+1000, on
#                          127.0.0.1 (Apicurio 3.x would otherwise open 0.0.0.0:9000)
#   APICURIO_VERSION       default 3.0.9, which runs on Java 17 (Debian's); 3.3.x needs Java 21+
#   APICURIO_CACHE         unpacked distribution, pid file, log (default <repo>/.cache/apicurio)
#   REGISTRY_HEAP          default -Xmx384m
#   REGISTRY_COMPATIBILITY default BACKWARD (NONE, FORWARD, FULL, ..._TRANSITIVE)
#   REGISTRY_START_TIMEOUT, REGISTRY_STOP_TIMEOUT   seconds, default 180 and 30
#   M2_REPO                Maven's local repository (default ~/.m2/repository)
#   JAVA                   a java binary; default: the first of $JAVA_HOME, java on PATH, /usr/lib/jvm/*
#                          that is new enough for the registry's class files
#
# The client URL is http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7: the bare http://host:port answers 404
# to every Confluent API call.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${APICURIO_VERSION:-3.0.9}"
PORT="${REGISTRY_PORT:-8081}"
MGMT_PORT="${REGISTRY_MGMT_PORT:-$((PORT + 1000))}"
CACHE="${APICURIO_CACHE:-$REPO/.cache/apicurio}"
DIST="$CACHE/apicurio-registry-app-$VERSION"
RUN="$CACHE/run-$PORT"
PIDFILE="$RUN/registry.pid"
LOG="$RUN/registry.log"
HEAP="${REGISTRY_HEAP:--Xmx384m}"
COMPATIBILITY="${REGISTRY_COMPATIBILITY:-BACKWARD}"
START_TIMEOUT="${REGISTRY_START_TIMEOUT:-180}"
STOP_TIMEOUT="${REGISTRY_STOP_TIMEOUT:-30}"
URL="http://127.0.0.1:$PORT/apis/ccompat/v7"
ARTIFACT="io.apicurio:apicurio-registry-app:$VERSION:tar.gz:all"

say() { echo "registry.sh: $*"; }
die() { echo "registry.sh: error: $*" >&2; exit 1; }

lock() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock -w 600 9 || die "another registry.sh held the lock for 10 minutes"
}

# --- the distribution ---------------------------------------------------------------------------------

fetch() {
  [ -f "$DIST/.runjar" ] && return 0
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Apicurio Registry from Maven Central"
  mkdir -p "$CACHE"
  say "fetching $ARTIFACT from Maven Central with Maven (about 110 MB, once)..."
  # dependency:get without transitives: dependency:copy also resolves the parent POM, which some
  # releases (3.0.9) do not publish
  if ! mvn -B -ntp -Dstyle.color=never dependency:get -Dartifact="$ARTIFACT" -Dtransitive=false \
    >"$CACHE/mvn.log" 2>&1; then
    grep -E 'ERROR' "$CACHE/mvn.log" >&2 || tail -30 "$CACHE/mvn.log" >&2
    die "mvn could not fetch $ARTIFACT (full log: $CACHE/mvn.log)"
  fi
  local path="io/apicurio/apicurio-registry-app/$VERSION/apicurio-registry-app-$VERSION-all.tar.gz" archive
  archive="${M2_REPO:-$HOME/.m2/repository}/$path"
  if [ ! -f "$archive" ]; then # a settings.xml with a localRepository of its own
    archive="$(mvn -B -q -ntp -Dstyle.color=never help:evaluate -Dexpression=settings.localRepository \
      -DforceStdout 2>/dev/null)/$path"
  fi
  [ -f "$archive" ] || die "mvn reported success but $archive is missing"
  local fresh="$DIST.new"
  rm -rf "$fresh"
  mkdir -p "$fresh"
  tar -xzf "$archive" -C "$fresh"
  # 3.x is a Quarkus fast-jar (quarkus-run.jar beside lib/ and app/); 2.6.x a *-runner.jar beside lib/
  local runjar
  runjar="$(find "$fresh" -maxdepth 3 \( -name quarkus-run.jar -o -name '*-runner.jar' \) | head -1)"
  [ -n "$runjar" ] || die "$archive holds neither quarkus-run.jar nor a *-runner.jar"
  rm -rf "$DIST"
  mv "$(dirname "$runjar")" "$DIST"
  rm -rf "$fresh"
  basename "$runjar" >"$DIST/.runjar"
  say "unpacked into $DIST"
}

# The Java release the registry's own classes were compiled for (class-file major version - 44). Python
# reads the jar (no unzip needed on a fresh machine).
java_needed() {
  local jar
  jar="$(find "$DIST/app" -maxdepth 1 -name '*.jar' 2>/dev/null | head -1)"
  [ -n "$jar" ] || jar="$DIST/$(cat "$DIST/.runjar")"
  python3 - "$jar" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as jar:
    name = next((n for n in jar.namelist() if n.endswith(".class") and not n.startswith("META-INF/")), None)
    print(int.from_bytes(jar.read(name)[6:8], "big") - 44 if name else 17)
PY
}

java_release() { "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p'; }

pick_java() {
  local needed candidate release
  needed="$(java_needed)"
  local candidates=("${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java || true)" /usr/lib/jvm/*/bin/java)
  if [ -n "${JAVA:-}" ]; then candidates=("$JAVA"); fi # an explicit choice is checked, never replaced
  for candidate in "${candidates[@]}"; do
    [ -n "$candidate" ] && [ -x "$candidate" ] || continue
    release="$(java_release "$candidate")"
    release="${release%%.*}"
    if [[ "$release" =~ ^[0-9]+$ ]] && [ "$release" -ge "$needed" ]; then
      echo "$candidate"
      return 0
    fi
  done
  die "Apicurio Registry $VERSION needs Java $needed or newer and none was found (set JAVA=/path/to/java," \
    "or APICURIO_VERSION=3.0.9, which runs on Java 17)"
}

# --- the process --------------------------------------------------------------------------------------

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The pid in our pid file, when that process is alive and is the registry started on our port.
our_pid() {
  local pid
  [ -f "$PIDFILE" ] || return 1
  pid="$(cat "$PIDFILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "-Dquarkus.http.port=$PORT " || return 1
  echo "$pid"
}

# http METHOD URL [JSON BODY]: the response body on a 2xx, else a failure (python3: no curl needed)
http() {
  python3 - "$@" <<'PY'
import sys, urllib.request
method, url, body = sys.argv[1], sys.argv[2], (sys.argv[3].encode() if len(sys.argv) > 3 else None)
request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=5) as answer:
        sys.stdout.write(answer.read().decode())
except Exception:
    sys.exit(1)
PY
}

# Ready: the Confluent API lists subjects (a JSON array), which needs the storage to be up.
answers() {
  local body
  body="$(http GET "$URL/subjects" 2>/dev/null)" || return 1
  [[ "$body" == \[* ]]
}

set_compatibility() {
  http PUT "$URL/config" "{\"compatibility\":\"$COMPATIBILITY\"}" >/dev/null \
    || die "could not set the global compatibility level $COMPATIBILITY at $URL/config"
}

wait_ready() {
  local start=$SECONDS pid
  pid="$(cat "$PIDFILE")"
  say "waiting for $URL to answer (timeout ${START_TIMEOUT}s)"
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -30 "$LOG" >&2 || true
      rm -f "$PIDFILE"
      die "the registry exited during startup (log above: $LOG)"
    fi
    if answers; then
      say "ready: $URL after $((SECONDS - start))s (pid $pid)"
      return 0
    fi
    if [ $((SECONDS - start)) -ge "$START_TIMEOUT" ]; then
      tail -30 "$LOG" >&2 || true
      die "the registry did not answer within ${START_TIMEOUT}s (log: $LOG)"
    fi
    sleep 0.5
  done
}

cmd_start() {
  lock
  if our_pid >/dev/null; then
    say "already running (pid $(our_pid))"
    wait_ready
    return 0
  fi
  if port_open "$PORT" && answers; then
    # started by another checkout or by hand: use it, leave it alone (stop will not touch it)
    say "a registry already answers at $URL (not started here): using it"
    return 0
  fi
  if port_open "$PORT" || port_open "$MGMT_PORT"; then
    die "port $PORT or $MGMT_PORT is taken by a process that is not our registry (pid file $PIDFILE);" \
      "stop it or set REGISTRY_PORT/REGISTRY_MGMT_PORT"
  fi
  fetch
  local java
  java="$(pick_java)"
  rm -rf "$RUN"
  mkdir -p "$RUN"
  say "starting Apicurio Registry $VERSION ($java) on 127.0.0.1:$PORT, in-memory storage, log $LOG"
  # the port flag comes first on the command line: our_pid recognises the process by it
  # shellcheck disable=SC2086  # HEAP is a list of JVM options
  (cd "$DIST" && exec "$java" -Dquarkus.http.port="$PORT" $HEAP -Dquarkus.http.host=127.0.0.1 \
    -Dquarkus.management.port="$MGMT_PORT" -Dquarkus.management.host=127.0.0.1 \
    -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -jar "$(cat .runjar)" >"$LOG" 2>&1 </dev/null 9>&-) &
  echo $! >"$PIDFILE"
  wait_ready
  set_compatibility
  say "global compatibility: $COMPATIBILITY"
}

cmd_stop() {
  lock
  local pid
  if ! pid="$(our_pid)"; then
    rm -f "$PIDFILE"
    say "not running"
    return 0
  fi
  say "stopping the registry (pid $pid): TERM, KILL after ${STOP_TIMEOUT}s"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    say "still running: KILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
  say "stopped"
}

cmd_status() {
  local pid
  if pid="$(our_pid)"; then say "running (pid $pid)"; else say "not running (ours)"; fi
  if answers; then
    say "$URL answers"
    return 0
  fi
  say "$URL does not answer"
  return 3
}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

case "${1:-}" in
  fetch) lock; fetch ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  url) echo "$URL" ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
