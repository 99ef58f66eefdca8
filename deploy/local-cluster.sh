#!/usr/bin/env bash
# A Zerotouch cluster on this machine, as real processes: a Redis Cluster of
# three masters, two Zerotouch replicas on it (one configuration file, one
# data key) and the reference hub agent following a hub cluster's shard.
#
#   deploy/local-cluster.sh up       start what is not running (builds zerotouch unless ZT_BIN is set)
#   deploy/local-cluster.sh status   what runs and answers; exit 0 only if everything does
#   deploy/local-cluster.sh env      export lines for the CLI: eval "$(deploy/local-cluster.sh env)"
#   deploy/local-cluster.sh down     stop everything, keep the data (up resumes)
#   deploy/local-cluster.sh purge    down, then delete the directory
#
# ZT_CLUSTER_DIR   where everything lives (default deploy/.local-cluster)
# ZT_PORT_BASE     ports BASE+1..3 Redis (cluster bus +10000), BASE+11..14 replica 1 (gRPC,
#                  REST, MQTT, metrics), BASE+21..24 replica 2 (default 17000)
# ZT_BIN           the zerotouch binary to run
#
# Needs redis-server and redis-cli (Debian: redis-server, redis-tools),
# openssl and curl. internal/deploytest runs it: up, devices registered
# through both replicas, each seen from the other and by the hub, down.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${ZT_CLUSTER_DIR:-$repo/deploy/.local-cluster}
base=${ZT_PORT_BASE:-17000}
redis_ports=($((base + 1)) $((base + 2)) $((base + 3)))
hub_cluster=local-hubs
shard=local-1

grpc_port() { echo $((base + 10 * $1 + 1)); }
http_port() { echo $((base + 10 * $1 + 2)); }
mqtt_port() { echo $((base + 10 * $1 + 3)); }
metrics_port() { echo $((base + 10 * $1 + 4)); }

say() { printf '%s\n' "$*"; }
die() { printf 'local-cluster: %s\n' "$*" >&2; exit 1; }

need() {
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || die "$c is not installed"
  done
}

# running PID: the process runs (an exited one that its new parent has not
# reaped yet, a zombie, does not).
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat:0:1}" != Z ]
}

# alive PIDFILE: the process in PIDFILE runs.
alive() {
  [ -s "$1" ] && running "$(cat "$1")"
}

# wait_for SECONDS COMMAND...: until COMMAND succeeds, or fail.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

ready() { # ready N: replica N's /readyz answers 200
  curl -sf --max-time 2 --cacert "$dir/secrets/ca.pem" "https://127.0.0.1:$(http_port "$1")/readyz"
}

cluster_ok() { # every node sees three masters and every slot
  local p info
  for p in "${redis_ports[@]}"; do
    info=$(redis-cli -p "$p" cluster info) || return 1
    grep -q '^cluster_state:ok' <<<"$info" && grep -q '^cluster_known_nodes:3' <<<"$info" || return 1
  done
}

zt() { # the CLI, as the owner, against replica 1
  ZEROTOUCH_ACCESS_KEY=$(cat "$dir/replica-1/owner.key") \
    "$bin" "$@" --server "127.0.0.1:$(grpc_port 1)" --ca-file "$dir/secrets/ca.pem"
}

start_redis() {
  local i p
  for i in 0 1 2; do
    p=${redis_ports[$i]}
    mkdir -p "$dir/redis-$i"
    if alive "$dir/run/redis-$i.pid"; then continue; fi
    redis-server --port "$p" --bind 127.0.0.1 --protected-mode no --dir "$dir/redis-$i" \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
      --appendonly yes --save "" --daemonize yes --pidfile "$dir/run/redis-$i.pid" \
      --logfile "$dir/redis-$i/redis.log" --loglevel warning
  done
  for p in "${redis_ports[@]}"; do
    wait_for 10 redis-cli -p "$p" ping || die "redis on $p does not answer (see $dir/redis-*/redis.log)"
  done
  if ! redis-cli -p "${redis_ports[0]}" cluster info | grep -q '^cluster_known_nodes:3'; then
    redis-cli --cluster create "127.0.0.1:${redis_ports[0]}" "127.0.0.1:${redis_ports[1]}" "127.0.0.1:${redis_ports[2]}" \
      --cluster-replicas 0 --cluster-yes >"$dir/run/cluster-create.log" 2>&1 || die "redis-cli --cluster create failed: $(cat "$dir/run/cluster-create.log")"
  fi
  wait_for 20 cluster_ok || die "the Redis Cluster did not form"
}

start_replica() {
  local n=$1
  mkdir -p "$dir/replica-$n"
  if ! alive "$dir/run/replica-$n.pid"; then
    ZEROTOUCH_LISTEN_METRICS="127.0.0.1:$(metrics_port "$n")" nohup "$bin" serve --config "$dir/zerotouch.yaml" \
      --data-dir "$dir/replica-$n" --grpc-listen "127.0.0.1:$(grpc_port "$n")" \
      --http-listen "127.0.0.1:$(http_port "$n")" --mqtt-listen "127.0.0.1:$(mqtt_port "$n")" \
      </dev/null >>"$dir/replica-$n/zerotouch.log" 2>&1 &
    echo $! >"$dir/run/replica-$n.pid"
  fi
  wait_for 30 ready "$n" || die "replica $n is not ready (see $dir/replica-$n/zerotouch.log)"
}

start_hub() {
  mkdir -p "$dir/hub"
  if [ ! -s "$dir/hub/node.pem" ]; then
    # The node's client certificate: CN = the hub cluster's ID, pinned on it.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 -subj "/CN=$hub_cluster" \
      -addext extendedKeyUsage=clientAuth -keyout "$dir/hub/node-key.pem" -out "$dir/hub/node.pem" 2>/dev/null
  fi
  if ! zt hub-cluster get "$hub_cluster" >/dev/null 2>&1; then
    zt hub-cluster create "$hub_cluster" --cert "$dir/hub/node.pem" >/dev/null
  fi
  if ! zt shard get "$shard" >/dev/null 2>&1; then
    zt shard create "$shard" --hostname "$shard.hubs.local" --hub-cluster "$hub_cluster" >/dev/null
  fi
  if ! alive "$dir/run/hub.pid"; then
    # The hub follows replica 2: what replica 1 writes reaches it through Redis.
    nohup "$bin" hub --server "127.0.0.1:$(grpc_port 2)" --ca-file "$dir/secrets/ca.pem" \
      --cert "$dir/hub/node.pem" --key "$dir/hub/node-key.pem" --state "$dir/hub/identities.json" \
      </dev/null >>"$dir/hub/hub.log" 2>&1 &
    echo $! >"$dir/run/hub.pid"
  fi
  wait_for 15 grep -q "snapshot $shard" "$dir/hub/hub.log" || die "the hub agent did not start (see $dir/hub/hub.log)"
}

up() {
  need redis-server redis-cli openssl curl
  mkdir -p "$dir/run"
  bin=${ZT_BIN:-$dir/bin/zerotouch}
  if [ -z "${ZT_BIN:-}" ]; then
    need go
    say "building $bin"
    (cd "$repo" && go build -o "$bin" ./cmd/zerotouch)
  fi
  [ -x "$bin" ] || die "$bin is not an executable"
  echo "$bin" >"$dir/run/bin"
  bash "$repo/deploy/secrets.sh" "$dir/secrets" >/dev/null
  start_redis
  cat >"$dir/zerotouch.yaml" <<YAML
# Written by deploy/local-cluster.sh: what both replicas share. Each has its
# own data directory and listeners (flags) and metrics port (environment).
storage:
  backend: redis
  redis:
    addrs: [127.0.0.1:${redis_ports[0]}, 127.0.0.1:${redis_ports[1]}, 127.0.0.1:${redis_ports[2]}]
    cluster: true
secrets:
  data_key_file: $dir/secrets/data.key
tls:
  cert_file: $dir/secrets/server.pem
  key_file: $dir/secrets/server-key.pem
log:
  format: text
YAML
  # One at a time: on an empty Redis the first creates the owner key.
  start_replica 1
  start_replica 2
  start_hub
  say "up: Redis Cluster on ${redis_ports[*]}; replicas gRPC $(grpc_port 1), $(grpc_port 2), REST $(http_port 1), $(http_port 2); hub agent on shard $shard"
  say "the owner key is in $dir/replica-1/owner.key; for the CLI: eval \"\$($0 env)\""
}

# stop NAME PIDFILE: SIGTERM, up to 30 s to drain, then SIGKILL.
stop() {
  local pidfile=$2 pid i
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if running "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
      running "$pid" || break
      sleep 0.1
    done
    if running "$pid"; then
      say "$1 did not stop in 30 s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped $1 ($pid)"
  fi
  rm -f "$pidfile"
}

down() {
  [ -d "$dir/run" ] || { say "nothing runs in $dir"; return 0; }
  stop hub "$dir/run/hub.pid"
  stop "replica 2" "$dir/run/replica-2.pid"
  stop "replica 1" "$dir/run/replica-1.pid"
  local i
  for i in 0 1 2; do
    stop "redis ${redis_ports[$i]}" "$dir/run/redis-$i.pid"
  done
}

status() {
  local ok=0 i n
  for i in 0 1 2; do
    if alive "$dir/run/redis-$i.pid" && redis-cli -p "${redis_ports[$i]}" ping >/dev/null 2>&1; then
      say "redis ${redis_ports[$i]}: up (pid $(cat "$dir/run/redis-$i.pid"))"
    else
      say "redis ${redis_ports[$i]}: down"; ok=1
    fi
  done
  if [ $ok = 0 ] && cluster_ok; then say "redis cluster: ok"; else say "redis cluster: not ok"; ok=1; fi
  for n in 1 2; do
    if alive "$dir/run/replica-$n.pid" && ready "$n" >/dev/null 2>&1; then
      say "replica $n: ready (pid $(cat "$dir/run/replica-$n.pid"), gRPC $(grpc_port "$n"), REST $(http_port "$n"))"
    else
      say "replica $n: not ready"; ok=1
    fi
  done
  if alive "$dir/run/hub.pid"; then say "hub agent: up (pid $(cat "$dir/run/hub.pid"))"; else say "hub agent: down"; ok=1; fi
  return $ok
}

env_lines() {
  [ -s "$dir/replica-1/owner.key" ] || die "no owner key yet: run up first"
  printf 'export ZEROTOUCH_SERVER=127.0.0.1:%s\n' "$(grpc_port 1)"
  printf 'export ZEROTOUCH_CA_FILE=%q\n' "$dir/secrets/ca.pem"
  printf 'export ZEROTOUCH_ACCESS_KEY=%q\n' "$(cat "$dir/replica-1/owner.key")"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  env) env_lines ;;
  purge) down; rm -rf "$dir"; say "removed $dir" ;;
  *) echo "usage: $0 up|status|env|down|purge" >&2; exit 2 ;;
esac
