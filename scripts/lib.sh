# Shared helpers for scripts/: start a private redis-server and the simulator, clean up on exit.
# Source it; it defines start_redis, start_redis_tcp, start_sim, start_worker and a cleanup trap.

CXRELAY_BIN=${CXRELAY_BIN:-target/debug/cxrelay}
PIDS=()

# The scripts never touch a Redis they did not start, nor inherit settings meant for something
# else: REDIS_URL and CXRELAY_* from the caller are dropped (CXRELAY_TEST_REDIS_URL excepted, see
# start_redis).
unset REDIS_URL
for _v in $(compgen -e); do
  case $_v in
    CXRELAY_TEST_REDIS_URL|CXRELAY_BIN) ;;
    CXRELAY_*) unset "$_v" ;;
  esac
done
unset _v

cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  done
  if [ -n "${REDIS_PID:-}" ]; then kill "$REDIS_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + RANDOM % 20000))
}

# start_redis DIR [extra args…]: private redis-server on a unix socket in DIR. With
# CXRELAY_TEST_REDIS_URL set, that Redis is used instead, under a fresh namespace.
start_redis() {
  local dir; dir=$(realpath -m "$1"); shift
  if [ -n "${CXRELAY_TEST_REDIS_URL:-}" ]; then
    export REDIS_URL=$CXRELAY_TEST_REDIS_URL CXRELAY_NAMESPACE="script-$$-$RANDOM"
    return
  fi
  mkdir -p "$dir"
  rm -f "$dir/redis.sock"
  redis-server --port 0 --unixsocket "$dir/redis.sock" --unixsocketperm 700 --save "" \
    --dir "$dir" --logfile "$dir/redis.log" "$@" &
  REDIS_PID=$!
  for _ in $(seq 1 200); do
    redis-cli -s "$dir/redis.sock" PING >/dev/null 2>&1 && break
    sleep 0.05
  done
  redis-cli -s "$dir/redis.sock" PING >/dev/null 2>&1 || { echo "error: redis-server did not start; see $dir/redis.log" >&2; exit 1; }
  export REDIS_URL="unix://$dir/redis.sock"
}

# start_redis_tcp DIR [extra args…]: another private redis-server, listening on a free TCP port of
# 127.0.0.1 only, no persistence (even when CXRELAY_TEST_REDIS_URL is set: for measures that need a
# Redis of their own). Sets REDIS_TCP_PID and REDIS_TCP_URL (redis://127.0.0.1:PORT); REDIS_URL and
# REDIS_PID are left alone. Stopped at exit like the simulator (PIDS).
start_redis_tcp() {
  local dir port try i; dir=$(realpath -m "$1"); shift
  mkdir -p "$dir"
  for try in 1 2 3; do
    port=$(free_port)
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      --dir "$dir" --logfile "$dir/redis.log" "$@" &
    REDIS_TCP_PID=$!
    for i in $(seq 1 200); do
      kill -0 "$REDIS_TCP_PID" 2>/dev/null || break
      # The server answering must be ours (the port could have been taken since free_port).
      [ "$(redis-cli -h 127.0.0.1 -p "$port" INFO server 2>/dev/null | awk -F: '$1 == "process_id" { print $2 + 0 }')" = "$REDIS_TCP_PID" ] && {
        PIDS+=("$REDIS_TCP_PID")
        export REDIS_TCP_URL="redis://127.0.0.1:$port"
        return 0
      }
      sleep 0.05
    done
    kill "$REDIS_TCP_PID" 2>/dev/null || true
    wait "$REDIS_TCP_PID" 2>/dev/null || true
  done
  REDIS_TCP_PID=
  echo "error: redis-server did not start on a TCP port; see $dir/redis.log" >&2
  exit 1
}

# start_sim LOG [sim args…]: the simulator on a free port; exports CXRELAY_API_BASE.
start_sim() {
  local log=$1; shift
  "$CXRELAY_BIN" sim --port 0 "$@" >"$log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 200); do
    grep -q "listening on" "$log" 2>/dev/null && break
    sleep 0.05
  done
  CXRELAY_API_BASE=$(grep -o 'http://[0-9.:]*' "$log" | head -1)
  export CXRELAY_API_BASE CXRELAY_CLIENT_ID=sim-client CXRELAY_CLIENT_SECRET=sim-secret
}

# start_worker LOG [worker args…]
start_worker() {
  local log=$1; shift
  "$CXRELAY_BIN" worker "$@" >"$log" 2>&1 &
  PIDS+=($!)
}

# gen_items N: a JSON array of N records on stdout.
gen_items() {
  awk -v n="$1" 'BEGIN { printf "["; for (i = 0; i < n; i++) { if (i) printf ","; printf "{\"customer_id\":\"%d\",\"action_type\":\"update_segment\",\"priority\":\"%s\"}", 1000 + i, (i % 3 == 0 ? "high" : "low") } print "]" }'
}

# restart_redis DIR [extra args…]: SIGKILL the private redis-server started by start_redis, then start
# it again with the same DIR (same unix socket) and arguments; with AOF on, it reloads its data.
restart_redis() {
  if [ -z "${REDIS_PID:-}" ]; then echo "error: restart_redis: no private redis-server (CXRELAY_TEST_REDIS_URL was given)" >&2; return 1; fi
  kill -KILL "$REDIS_PID" 2>/dev/null || true
  wait "$REDIS_PID" 2>/dev/null || true
  REDIS_PID=
  unset REDIS_URL
  start_redis "$@"
  # PING already answers while the data set is loading; wait until it is loaded.
  local sock="${REDIS_URL#unix://}"
  for _ in $(seq 1 600); do
    redis-cli -s "$sock" INFO persistence 2>/dev/null | grep -q '^loading:0' && return 0
    sleep 0.05
  done
  echo "error: redis-server did not finish loading its data; see its log" >&2
  return 1
}
