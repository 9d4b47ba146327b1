#!/usr/bin/env bash
# Runs a Magnetar cluster on this machine, on loopback: 3 metadata nodes, 3 bookies and
# 2 brokers, each its own process. Data and logs live under ./data/local-cluster.
#
#   scripts/local-cluster.sh start     # build if needed, start everything, wait until ready
#   scripts/local-cluster.sh status    # which processes are alive
#   scripts/local-cluster.sh stop      # SIGTERM everything (brokers first), wait, SIGKILL leftovers
#
# Environment (defaults in brackets):
#   MAGNETAR_BIN              the magnetar binary [built into $CARGO_TARGET_DIR/debug/magnetar]
#   LC_DIR                    data directory [./data/local-cluster]
#   LC_CLUSTER                cluster name [local]
#   LC_METADATA_PORT          first metadata port [7101]      (3 ports)
#   LC_BOOKIE_PORT            first bookie port [3181]        (3 ports)
#   LC_BROKER_PORT            first broker Pulsar port [6650] (2 ports)
#   LC_HTTP_PORT              first broker HTTP port [8080]   (2 ports)
#   LC_SESSION_TTL_MS         broker session TTL [10000]
set -euo pipefail
cd "$(dirname "$0")/.."

LC_DIR="${LC_DIR:-./data/local-cluster}"
LC_CLUSTER="${LC_CLUSTER:-local}"
MP="${LC_METADATA_PORT:-7101}"
BP="${LC_BOOKIE_PORT:-3181}"
PP="${LC_BROKER_PORT:-6650}"
HP="${LC_HTTP_PORT:-8080}"
TTL="${LC_SESSION_TTL_MS:-10000}"
PIDS="$LC_DIR/pids"
META_ADDRS="127.0.0.1:$MP,127.0.0.1:$((MP + 1)),127.0.0.1:$((MP + 2))"
MEMBERS="1=127.0.0.1:$MP,2=127.0.0.1:$((MP + 1)),3=127.0.0.1:$((MP + 2))"

log() { echo "local-cluster: $*" >&2; }

binary() {
    if [ -n "${MAGNETAR_BIN:-}" ]; then
        echo "$MAGNETAR_BIN"
        return
    fi
    local target="${CARGO_TARGET_DIR:-$HOME/.cache/magnetar-target}"
    log "building magnetar (if out of date)"
    CARGO_TARGET_DIR="$target" cargo build -q -p magnetar-tools --bin magnetar >&2
    echo "$target/debug/magnetar"
}

alive() { [ -f "$PIDS/$1.pid" ] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }

# launch NAME ARGS...: runs magnetar ARGS in the background, logging to $LC_DIR/NAME.log.
launch() {
    local name="$1"
    shift
    if alive "$name"; then
        log "$name already running (pid $(cat "$PIDS/$name.pid"))"
        return
    fi
    # setsid: a Ctrl-C in the calling terminal does not reach the cluster.
    if command -v setsid >/dev/null 2>&1; then
        setsid "$BIN" "$@" >>"$LC_DIR/$name.log" 2>&1 </dev/null &
    else
        "$BIN" "$@" >>"$LC_DIR/$name.log" 2>&1 </dev/null &
    fi
    echo $! >"$PIDS/$name.pid"
    log "$name started (pid $!, log $LC_DIR/$name.log)"
}

# wait_http NAME URL SECONDS: until process NAME answers on URL.
wait_http() {
    local name="$1" url="$2" deadline=$((SECONDS + $3))
    until curl -fsS -o /dev/null "$url" 2>/dev/null; do
        if ! alive "$name"; then
            log "$name exited; see $LC_DIR/$name.log"
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "timed out waiting for $url"
            return 1
        fi
        sleep 0.2
    done
}

start() {
    BIN="$(binary)"
    mkdir -p "$PIDS"
    for i in 1 2 3; do
        launch "metadata-$i" metadata --node-id "$i" --listen "127.0.0.1:$((MP + i - 1))" \
            --data-dir "$LC_DIR/metadata-$i" --members "$MEMBERS"
    done
    # Waits for a Raft leader (up to 60 s) and writes the cluster's records.
    "$BIN" initialize-cluster-metadata --cluster "$LC_CLUSTER" --metadata "$META_ADDRS" \
        --web-service-url "http://127.0.0.1:$HP" \
        --broker-service-url "pulsar://127.0.0.1:$PP" >>"$LC_DIR/init.log" 2>&1 ||
        { log "initialize-cluster-metadata failed; see $LC_DIR/init.log"; exit 1; }
    for i in 1 2 3; do
        launch "bookie-$i" bookie --listen "127.0.0.1:$((BP + i - 1))" \
            --data-dir "$LC_DIR/bookie-$i" --metadata "$META_ADDRS"
    done
    for i in 1 2; do
        launch "broker-$i" broker --listen "127.0.0.1:$((PP + i - 1))" \
            --http-listen "127.0.0.1:$((HP + i - 1))" --advertised-address 127.0.0.1 \
            --metadata "$META_ADDRS" --cluster "$LC_CLUSTER" --session-ttl-ms "$TTL"
    done
    for i in 1 2; do
        wait_http "broker-$i" "http://127.0.0.1:$((HP + i - 1))/health" 60
    done
    log "ready: service URL pulsar://127.0.0.1:$PP,127.0.0.1:$((PP + 1))  admin http://127.0.0.1:$HP"
}

stop_one() {
    local name="$1"
    [ -f "$PIDS/$name.pid" ] || return 0
    local pid
    pid="$(cat "$PIDS/$name.pid")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name did not stop in 10 s; killing"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "$name stopped"
    fi
    rm -f "$PIDS/$name.pid"
}

stop() {
    for n in broker-2 broker-1 bookie-3 bookie-2 bookie-1 metadata-3 metadata-2 metadata-1; do
        stop_one "$n"
    done
}

status() {
    for n in metadata-1 metadata-2 metadata-3 bookie-1 bookie-2 bookie-3 broker-1 broker-2; do
        if alive "$n"; then echo "$n running (pid $(cat "$PIDS/$n.pid"))"; else echo "$n stopped"; fi
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
