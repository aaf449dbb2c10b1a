#!/usr/bin/env bash
# A production-shaped local Kafka: three KRaft nodes (combined broker+controller) on 127.0.0.1, from the
# same Maven Central jars as the single broker (scripts/kafka.sh), which it never touches.
#
#   - replication factor 3 and min.insync.replicas=2 for every topic, the internal ones included
#   - clients connect with SASL_SSL (SCRAM-SHA-512) to a TLS certificate from a CA generated here;
#     brokers and controllers talk to each other over mutual TLS (principal User:kafka-node)
#   - SCRAM users created when the storage is formatted: admin (super user), worker, analytics, producer,
#     replay (who runs `stream-anon dlq replay`)
#   - StandardAuthorizer: no access where no ACL matches (only admin and the nodes are super users)
#   - ready-to-use client settings per principal in $RUN/clients/: NAME.librdkafka.yaml (librdkafka keys,
#     usable as stream-anon's kafka_secrets_file) and NAME.java.properties (Java clients, --command-config)
#
#   scripts/kafka.sh start --cluster     a fresh cluster, unless it is already running (then: readiness check)
#   scripts/kafka.sh stop --cluster      TERM all nodes, KILL after KAFKA_STOP_TIMEOUT seconds; keeps the data
#   scripts/kafka.sh status --cluster    exit 0 when all three nodes answer, 3 otherwise
#   scripts/kafka.sh bootstrap --cluster print the bootstrap addresses
#   scripts/kafka-cluster.sh kill-node N      SIGKILL node N (1-3): an unclean crash
#   scripts/kafka-cluster.sh stop-node N      TERM node N (controlled shutdown)
#   scripts/kafka-cluster.sh start-node N     start node N again on its data, wait until it serves again
#   scripts/kafka-cluster.sh pid N            the JVM pid of node N
#   scripts/kafka-cluster.sh controller       the node id of the active controller (the KRaft quorum leader)
#
# Environment:
#   KAFKA_CACHE                jars (shared with scripts/kafka.sh; default <repo>/.cache/kafka)
#   KAFKA_CLUSTER_RUN          config, TLS material, client settings, data, logs (default $KAFKA_CACHE/cluster)
#   KAFKA_CLUSTER_PORT         first client port (default 19092): node N listens for clients on PORT+N-1,
#                              between nodes on PORT+100+N-1, as a controller on PORT+200+N-1
#   KAFKA_CLUSTER_HEAP_OPTS    default -Xms128m -Xmx384m per node
#   KAFKA_START_TIMEOUT, KAFKA_STOP_TIMEOUT   seconds, default 180 and 30
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SAY_AS=kafka-cluster
# shellcheck source=lib/kafka-common.sh
. "$REPO/scripts/lib/kafka-common.sh"
RUN="${KAFKA_CLUSTER_RUN:-$CACHE/cluster}"
PORT="${KAFKA_CLUSTER_PORT:-19092}"
HEAP="${KAFKA_CLUSTER_HEAP_OPTS:--Xms128m -Xmx384m}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-180}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
NODES=(1 2 3)
TLS="$RUN/tls"
CLIENTS="$RUN/clients"
USERS=(admin worker analytics producer replay)
NODE_PRINCIPAL="kafka-node"

client_port() { echo $((PORT + $1 - 1)); }
internal_port() { echo $((PORT + 100 + $1 - 1)); }
controller_port() { echo $((PORT + 200 + $1 - 1)); }
bootstrap() {
  local n out=""
  for n in "${NODES[@]}"; do out="${out:+$out,}127.0.0.1:$(client_port "$n")"; done
  echo "$out"
}
props() { echo "$RUN/node$1/server.properties"; }
pidfile() { echo "$RUN/node$1/kafka.pid"; }
node_log() { echo "$RUN/node$1/logs/server.out"; }

# --- TLS material: a CA, one certificate for the nodes (SAN 127.0.0.1/localhost) ----------------------

make_tls() {
  command -v openssl >/dev/null || die "openssl is needed to generate the cluster's certificates"
  mkdir -p "$TLS"
  local pass; pass="$(openssl rand -hex 16)"
  echo "$pass" >"$TLS/keystore.password"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=stream-anon test CA" \
    -keyout "$TLS/ca.key" -out "$TLS/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$NODE_PRINCIPAL" \
    -keyout "$TLS/node.key" -out "$TLS/node.csr" 2>/dev/null
  printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "extendedKeyUsage=serverAuth,clientAuth" \
    >"$TLS/node.ext"
  openssl x509 -req -in "$TLS/node.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" -CAcreateserial \
    -days 30 -extfile "$TLS/node.ext" -out "$TLS/node.pem" 2>/dev/null
  # PKCS12 with the CA in the chain; the nodes trust the CA's PEM file directly (ssl.truststore.type=PEM)
  openssl pkcs12 -export -in "$TLS/node.pem" -inkey "$TLS/node.key" -certfile "$TLS/ca.pem" \
    -name node -passout "pass:$pass" -out "$TLS/node.p12"
  chmod 600 "$TLS"/*.key "$TLS/keystore.password" "$TLS/node.p12"
  rm -f "$TLS/node.csr" "$TLS/node.ext"
}

# --- configuration ------------------------------------------------------------------------------------

write_node_config() {  # write_node_config N
  local n="$1" voters="" m
  for m in "${NODES[@]}"; do voters="${voters:+$voters,}$m@127.0.0.1:$(controller_port "$m")"; done
  mkdir -p "$RUN/node$n/logs"
  cat >"$(props "$n")" <<PROPS
# written by scripts/kafka-cluster.sh: node $n of a three-node KRaft cluster for tests
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=CLIENT://127.0.0.1:$(client_port "$n"),INTERNAL://127.0.0.1:$(internal_port "$n"),CONTROLLER://127.0.0.1:$(controller_port "$n")
advertised.listeners=CLIENT://127.0.0.1:$(client_port "$n"),INTERNAL://127.0.0.1:$(internal_port "$n")
inter.broker.listener.name=INTERNAL
controller.listener.names=CONTROLLER
listener.security.protocol.map=CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL
log.dirs=$RUN/node$n/data

# clients: SCRAM-SHA-512 over TLS; credentials live in the cluster metadata (added at format time)
listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
# nodes: mutual TLS; the certificate's CN is the principal (User:$NODE_PRINCIPAL)
listener.name.internal.ssl.client.auth=required
listener.name.controller.ssl.client.auth=required
ssl.principal.mapping.rules=RULE:^CN=([^,]+).*\$/\$1/,DEFAULT
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS/node.p12
ssl.keystore.password=$(cat "$TLS/keystore.password")
ssl.key.password=$(cat "$TLS/keystore.password")
ssl.truststore.type=PEM
ssl.truststore.location=$TLS/ca.pem
ssl.endpoint.identification.algorithm=https

# authorization: StandardAuthorizer (KRaft), deny where no ACL matches
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:$NODE_PRINCIPAL

# replication: three copies of everything, two in sync to acknowledge a write
$(replication_properties 3 2 3)
unclean.leader.election.enable=false

$(test_broker_properties)
PROPS
  write_broker_log4j "$RUN/node$n" 2
}

write_client_settings() {
  local user pass boot; boot="$(bootstrap)"
  mkdir -p "$CLIENTS"
  for user in "${USERS[@]}"; do
    pass="$(cat "$CLIENTS/.$user.password")"
    cat >"$CLIENTS/$user.librdkafka.yaml" <<YAML
# librdkafka settings for User:$user on the local three-node cluster (scripts/kafka-cluster.sh)
bootstrap.servers: "$boot"
security.protocol: SASL_SSL
sasl.mechanisms: SCRAM-SHA-512
sasl.username: "$user"
sasl.password: "$pass"
ssl.ca.location: "$TLS/ca.pem"
ssl.endpoint.identification.algorithm: https
YAML
    cat >"$CLIENTS/$user.java.properties" <<JAVA
# Java client settings for User:$user on the local three-node cluster (scripts/kafka-cluster.sh)
bootstrap.servers=$boot
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$user" password="$pass";
ssl.truststore.type=PEM
ssl.truststore.location=$TLS/ca.pem
ssl.endpoint.identification.algorithm=https
JAVA
    chmod 600 "$CLIENTS/$user".*
  done
}

format_all() {
  local cluster_id n user scram=()
  for user in "${USERS[@]}"; do
    openssl rand -hex 16 >"$CLIENTS/.$user.password"
    chmod 600 "$CLIENTS/.$user.password"
    scram+=(--add-scram "SCRAM-SHA-512=[name=$user,password=$(cat "$CLIENTS/.$user.password")]")
  done
  cluster_id="$(java_tool kafka.tools.StorageTool random-uuid)"
  local pids=()
  for n in "${NODES[@]}"; do
    # every node gets the same bootstrap records (the SCRAM users); three JVMs at once save startup time
    java_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$(props "$n")" "${scram[@]}" \
      >"$RUN/node$n/logs/format.log" 2>&1 &
    pids+=($!)
  done
  for n in "${NODES[@]}"; do
    wait "${pids[$((n - 1))]}" || { cat "$RUN/node$n/logs/format.log" >&2; die "formatting node $n failed"; }
  done
  say "formatted 3 nodes (cluster $cluster_id) with SCRAM-SHA-512 users: ${USERS[*]}"
}

# --- processes ----------------------------------------------------------------------------------------

node_pid() { broker_pid "$(pidfile "$1")" "$(props "$1")"; }  # node N's JVM, when it runs our config

launch_node() {
  local n="$1" p
  for p in "$(client_port "$n")" "$(internal_port "$n")" "$(controller_port "$n")"; do
    if port_open "127.0.0.1:$p"; then die "port $p (node $n) is taken by another process; set KAFKA_CLUSTER_PORT"; fi
  done
  start_broker_jvm "$(props "$n")" "$RUN/node$n" "$(node_log "$n")" "$(pidfile "$n")" "$HEAP" \
    -XX:TieredStopAtLevel=1
}

# Ready: as admin over SASL_SSL, all BROKERS (default 3) are in the metadata, a topic with that many in-sync
# replicas takes an acks=all write that reads back, a group commits, and a transaction commits.
round_trip() {  # round_trip [BROKERS]
  local py; py="$(python_with yaml)" || die "a Python with confluent_kafka and PyYAML is needed (scripts/setup.sh)"
  client_round_trip "$py" --client-settings "$CLIENTS/admin.librdkafka.yaml" --topic _kafka_cluster_ready \
    --brokers "${1:-3}"
}

nodes_alive() {  # dies when a node we started exited
  local n
  for n in "${NODES[@]}"; do
    if [ -f "$(pidfile "$n")" ] && ! node_pid "$n" >/dev/null; then
      tail -30 "$(node_log "$n")" "$RUN/node$n/logs/server.log" >&2 2>/dev/null || true
      die "node $n exited during startup (log above; full logs in $RUN/node$n/logs)"
    fi
  done
}

wait_ready() {  # wait_ready [BROKERS]
  wait_until_ready "the cluster at $(bootstrap)" "$START_TIMEOUT" 2 "$RUN/ready.err" nodes_alive round_trip "${1:-3}"
  say "ready: $(bootstrap) after ${SECONDS}s (SASL_SSL as admin: ${1:-3} brokers, replicated write, group commit, transaction)"
}

lock() { take_lock "$CACHE/.cluster.lock"; }

valid_node() { [[ "${1:-}" =~ ^[123]$ ]] || die "a node number is needed: 1, 2 or 3"; }

# --- subcommands --------------------------------------------------------------------------------------

cmd_start() {
  lock
  local n running=0
  for n in "${NODES[@]}"; do if node_pid "$n" >/dev/null; then running=$((running + 1)); fi; done
  if [ "$running" = 3 ]; then
    say "already running"
    wait_ready
    return 0
  fi
  [ "$running" = 0 ] || die "only $running of 3 nodes run; stop them first (scripts/kafka.sh stop --cluster)"
  fetch
  rm -rf "$RUN"
  mkdir -p "$RUN" "$CLIENTS"
  make_tls
  for n in "${NODES[@]}"; do write_node_config "$n"; done
  format_all
  write_client_settings
  for n in "${NODES[@]}"; do launch_node "$n"; done
  say "started nodes 1-3 (heap $HEAP each); logs in $RUN/node*/logs"
  wait_ready
  say "client settings per principal in $CLIENTS: ${USERS[*]} (.librdkafka.yaml and .java.properties)"
}

cmd_stop() {
  lock
  local n pid pids=() t0=$SECONDS
  for n in "${NODES[@]}"; do
    if pid="$(node_pid "$n")"; then pids+=("$pid"); kill -TERM "$pid" 2>/dev/null || true; fi
    rm -f "$(pidfile "$n")"
  done
  [ ${#pids[@]} -gt 0 ] || { say "not running"; return 0; }
  say "stopping ${#pids[@]} node(s): TERM, KILL after ${STOP_TIMEOUT}s"
  for pid in "${pids[@]}"; do
    # the last nodes cannot finish a controlled shutdown without a quorum: a bounded wait, then KILL
    signal_and_wait "$pid" 0 "$STOP_TIMEOUT" || signal_and_wait "$pid" KILL 10 || die "pid $pid survived SIGKILL"
  done
  say "stopped ($((SECONDS - t0))s); data kept in $RUN"
}

cmd_status() {
  local n pid up=0
  for n in "${NODES[@]}"; do
    if pid="$(node_pid "$n")"; then say "node $n running (pid $pid), 127.0.0.1:$(client_port "$n")"; up=$((up + 1))
    else say "node $n not running"; fi
  done
  if [ "$up" = 3 ] && round_trip 3 2>/dev/null; then
    say "$(bootstrap) answers (3 brokers)"
    return 0
  fi
  say "the cluster does not answer with all 3 brokers"
  return 3
}

cmd_kill_node() {
  valid_node "${1:-}"
  local pid; pid="$(node_pid "$1")" || { say "node $1 is not running"; return 0; }
  signal_and_wait "$pid" KILL 10 || die "node $1 (pid $pid) survived SIGKILL"
  rm -f "$(pidfile "$1")"
  say "node $1 killed (SIGKILL, pid $pid)"
}

cmd_stop_node() {
  valid_node "${1:-}"
  local pid; pid="$(node_pid "$1")" || { say "node $1 is not running"; return 0; }
  signal_and_wait "$pid" TERM "$STOP_TIMEOUT" || signal_and_wait "$pid" KILL 10 || die "pid $pid survived SIGKILL"
  rm -f "$(pidfile "$1")"
  say "node $1 stopped (pid $pid)"
}

cmd_start_node() {
  valid_node "${1:-}"
  if node_pid "$1" >/dev/null; then say "node $1 already running"; return 0; fi
  [ -f "$RUN/node$1/data/meta.properties" ] || die "node $1 has no formatted data; use: scripts/kafka.sh start --cluster"
  launch_node "$1"
  # serving again: registered, and back in the ISR of a replicated topic
  wait_ready 3
}

cmd_pid() { valid_node "${1:-}"; node_pid "$1" || die "node $1 is not running"; }

cmd_controller() {
  # the KRaft quorum leader, as the quorum itself reports it
  java_tool org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$(bootstrap)" \
    --command-config "$CLIENTS/admin.java.properties" describe --status | awk -F': *' '/^LeaderId/ {print $2}'
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  bootstrap) bootstrap ;;
  kill-node) cmd_kill_node "${2:-}" ;;
  stop-node) cmd_stop_node "${2:-}" ;;
  start-node) cmd_start_node "${2:-}" ;;
  pid) cmd_pid "${2:-}" ;;
  controller) cmd_controller ;;
  -h | --help | help) usage_of "${BASH_SOURCE[0]}" ;;
  *) usage_of "${BASH_SOURCE[0]}" >&2; exit 2 ;;
esac
