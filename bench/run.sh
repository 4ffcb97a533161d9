#!/usr/bin/env bash
# Passthrough benchmark on loopback: upstream nginx directly, nginx as a proxy, HAProxy
# as a proxy, the gateway on a `public` route (access log on, then off), the gateway
# checking a bearer token (one token, cached; then a new token per request), HAProxy
# verifying the same JWTs (`jwt_verify`) and, for reference, a minimal aiohttp proxy, all
# with wrk (HTTP/1.1 keep-alive). See bench/README.md.
#
#   bash bench/run.sh          (or: make bench)
#
# Settings (environment):
#   BENCH_DURATION=10      measured seconds per target
#   BENCH_WARMUP=3         unrecorded warm-up seconds per target, same load
#   BENCH_CONNECTIONS=64   wrk connections
#   BENCH_THREADS=1        wrk threads (1-2: wrk shares its core with the upstream)
#   BENCH_ROUNDS=1         measured runs per target; the table shows the best (noisy hosts)
#   BENCH_LOAD_CPU=0       core for wrk and the upstream nginx
#   BENCH_PROXY_CPU=1      core for the proxy under test (alone)
#   BENCH_GATEWAY_QUIET=1  also measure the gateway with `server.access_log: false` (0: skip)
#   BENCH_AIOHTTP_FLOOR=1  also measure bench/aiohttp_floor.py, a bare aiohttp proxy (0: skip)
#   BENCH_TOKENS=1         also measure the token rows: gateway and HAProxy checking JWTs (0: skip)
#   BENCH_COLD_TOKENS=200000  tokens minted for the rows with a new token per request
#   BENCH_VENV=.venv       the project's virtualenv (must exist: `make bench` makes it)
#
# Output: the table on stdout and in bench/results/latest.md; the gateway's logs in
# bench/results/gateway-*.log (overwritten by the next run).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
RESULTS=$HERE/results

INVOCATION=$(printf '%q ' "$0" "$@")
INVOCATION=${INVOCATION% }

DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-3}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-1}
ROUNDS=${BENCH_ROUNDS:-1}
LOAD_CPU=${BENCH_LOAD_CPU:-0}
PROXY_CPU=${BENCH_PROXY_CPU:-1}
GATEWAY_QUIET=${BENCH_GATEWAY_QUIET:-1}
AIOHTTP_FLOOR=${BENCH_AIOHTTP_FLOOR:-1}
TOKEN_ROWS=${BENCH_TOKENS:-1}
COLD_TOKENS=${BENCH_COLD_TOKENS:-200000}
VENV=${BENCH_VENV:-$ROOT/.venv}
case $VENV in /*) ;; *) VENV=$ROOT/$VENV ;; esac

BENCH_PATH=/api/v3/bench
# About 100 bytes of JSON, no quote or `$` inside (it goes into nginx's `return`).
BODY='{"status":"ok","service":"bench-upstream","items":[1,2,3,4,5],'
BODY+='"message":"hello from the upstream"}'

export PATH=$PATH:/usr/sbin:/sbin

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

for arg in "$@"; do
    case $arg in
        -h|--help) usage; exit 0 ;;
        *) die "unexpected argument '$arg' (settings are environment variables; see --help)" ;;
    esac
done

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
for name in DURATION WARMUP CONNECTIONS THREADS ROUNDS LOAD_CPU PROXY_CPU COLD_TOKENS; do
    is_uint "${!name}" || die "BENCH_$name must be a non-negative integer, got '${!name}'"
done
((DURATION > 0 && CONNECTIONS > 0 && THREADS > 0 && ROUNDS > 0)) \
    || die "BENCH_DURATION, BENCH_CONNECTIONS, BENCH_THREADS and BENCH_ROUNDS must be positive"
((COLD_TOKENS >= THREADS && COLD_TOKENS <= 10000000)) \
    || die "BENCH_COLD_TOKENS must be between BENCH_THREADS and 10000000, got $COLD_TOKENS"
((CONNECTIONS >= THREADS)) || die "BENCH_CONNECTIONS must be at least BENCH_THREADS"

GATEWAY=$VENV/bin/gateway
PYTHON=$VENV/bin/python
[[ -x $GATEWAY && -x $PYTHON ]] \
    || die "$GATEWAY not found: create the virtualenv first (make .venv/.installed, or make bench)"

# --- tools ---------------------------------------------------------------------------
install_missing() {
    local -a packages=()
    command -v wrk >/dev/null || packages+=(wrk)
    command -v nginx >/dev/null || packages+=(nginx)
    command -v haproxy >/dev/null || packages+=(haproxy)
    command -v curl >/dev/null || packages+=(curl)
    command -v taskset >/dev/null || packages+=(util-linux)
    ((${#packages[@]})) || return 0
    ((EUID == 0)) || die "missing ${packages[*]}: install them, or run as root to apt-get them"
    command -v apt-get >/dev/null || die "missing ${packages[*]} and no apt-get to install them"
    log "installing ${packages[*]}"
    # Keep the packages' init scripts from starting system-wide daemons (port 80 etc.).
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
    fi
    local status=0
    {
        apt-get update -q \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${packages[@]}"
    } >&2 || status=$?
    ((made_policy)) && rm -f "$policy"
    ((status == 0)) || die "apt-get install ${packages[*]} failed"
}
install_missing

CPUS=$(nproc)
((LOAD_CPU < CPUS && PROXY_CPU < CPUS)) \
    || die "BENCH_LOAD_CPU/BENCH_PROXY_CPU must be below the $CPUS CPUs available"
((LOAD_CPU != PROXY_CPU)) || log "warning: load and proxy share core $LOAD_CPU"

# --- processes -----------------------------------------------------------------------
WORK=$(mktemp -d /tmp/gateway-bench.XXXXXX)
declare -a PIDS=()

stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid did not stop on SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        stop_pid "$pid"
    done
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start CPU LOGFILE COMMAND... : run pinned in the background; the pid is in $STARTED.
start() {
    local cpu=$1 logfile=$2
    shift 2
    taskset -c "$cpu" "$@" >"$logfile" 2>&1 &
    STARTED=$!
    PIDS+=("$STARTED")
}

# forget PID: no longer stop it on exit.
forget() {
    local kept=() p
    for p in "${PIDS[@]}"; do
        [[ $p == "$1" ]] || kept+=("$p")
    done
    PIDS=("${kept[@]}")
}

# stop PID: stop one process started by `start` and forget it.
stop() {
    stop_pid "$1"
    forget "$1"
}

# wait_ready NAME PID LOGFILE URL [CURL-ARG...]: until URL answers 200 with the upstream's
# body (the curl arguments, e.g. `-H 'Authorization: ...'`, go with every try).
wait_ready() {
    local name=$1 pid=$2 logfile=$3 url=$4 i body
    shift 4
    for ((i = 0; i < 300; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$logfile" >&2 || true
            die "$name exited during start-up (log above: $logfile)"
        fi
        if body=$(curl -fsS --max-time 1 "$@" "$url" 2>/dev/null) && [[ $body == "$BODY" ]]
        then
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$logfile" >&2 || true
    curl -sS -i --max-time 2 "$@" "$url" >&2 || true
    die "$name did not answer 200 with the upstream's body on $url within 30 s"
}

port() { "$PYTHON" "$HERE/report.py" port; }

# snapshot CPU SERVER-PID FILE: CPU counters around a measured run (taken from wrk's core).
snapshot() {
    taskset -c "$1" "$PYTHON" "$HERE/report.py" snapshot \
        --pid "server=$2" --pid "upstream=$UP_PID" --out "$3"
}

# --- configurations ------------------------------------------------------------------
UP_PORT=$(port)
NGINX_PROXY_PORT=$(port)
HAPROXY_PORT=$(port)
GATEWAY_PORT=$(port)
HAPROXY_JWT_PORT=$(port)
FLOOR_PORT=$(port)

write_nginx_conf() {  # DIR PORT HTTP-BODY
    mkdir -p "$1"
    cat >"$1/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    server_tokens off;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
$3
}
EOF
}

write_nginx_conf "$WORK/upstream" "$UP_PORT" "    server {
        listen 127.0.0.1:$UP_PORT backlog=4096;
        location / {
            default_type application/json;
            return 200 '$BODY';
        }
    }"

write_nginx_conf "$WORK/nginx-proxy" "$NGINX_PROXY_PORT" "    upstream bench_upstream {
        server 127.0.0.1:$UP_PORT;
        keepalive 128;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:$NGINX_PROXY_PORT backlog=4096;
        location / {
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }"

# write_haproxy_conf DIR PORT [RULES]: RULES (lines) go into the frontend, before the backend.
write_haproxy_conf() {
    mkdir -p "$1"
    cat >"$1/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 30s

frontend bench
    bind 127.0.0.1:$2
${3:-}    default_backend bench_upstream

backend bench_upstream
    server upstream 127.0.0.1:$UP_PORT
EOF
}
write_haproxy_conf "$WORK/haproxy" "$HAPROXY_PORT"

# write_gateway_conf FILE ACCESS-LOG POLICY: every configuration shares the folder (store,
# signing keys, certificates), so tokens minted with one are valid for all.
write_gateway_conf() {
    cat >"$1" <<EOF
server:
  http: {host: 127.0.0.1, port: $GATEWAY_PORT}
  https: null
  workers: 1
  access_log: $2
store:
  url: sqlite:///var/gateway.db
regions:
  default: local
  local: {hosts: [localhost], upstreams: ["http://127.0.0.1:$UP_PORT"]}
policies: [policies/$3]
EOF
}
mkdir -p "$WORK/gateway"
write_gateway_conf "$WORK/gateway/config.yaml" true bench.yaml
write_gateway_conf "$WORK/gateway/config-access-log-off.yaml" false bench.yaml
# The token rows: the gateway as shipped (access log on) with a rule asking for a token on
# /api/**. The passthrough rows keep the public-only policy, on the same path.
write_gateway_conf "$WORK/gateway/config-token.yaml" true bench-token.yaml
mkdir -p "$WORK/gateway/policies"
cat >"$WORK/gateway/policies/bench.yaml" <<'EOF'
rules:
  - name: bench-public
    match: {path: "/**"}
    auth: public
EOF
cat >"$WORK/gateway/policies/bench-token.yaml" <<'EOF'
rules:
  - name: bench-token
    match: {path: "/api/**"}
    auth: any_token
  - name: bench-public
    match: {path: "/**"}
    auth: public
EOF

# --- measuring -----------------------------------------------------------------------
mkdir -p "$RESULTS"
rm -f "$RESULTS"/gateway-*.log
MANIFEST=$WORK/manifest.jsonl
: >"$MANIFEST"
declare -a NOTES=() APPENDICES=()

# run_wrk CPU OUT ARGS...: wrk in the background, waited for, so that Ctrl-C (which wrk
# catches, leaving bash's INT trap unrun were wrk in the foreground) stops the script.
run_wrk() {
    local cpu=$1 out=$2 pid status=0
    shift 2
    taskset -c "$cpu" wrk "$@" >"$out" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || status=$?
    forget "$pid"
    ((status == 0)) || { cat "$out" >&2; die "wrk failed (status $status)"; }
}

# shown_command CPU WRK-ARG...: the wrk command as the results show it: arguments with a
# space quoted, the temporary folder as $WORK, the token of the one-token rows as $TOKEN.
shown_command() {
    local cpu=$1 arg text work="\$WORK" token="\$TOKEN"
    shift
    text="taskset -c $cpu wrk"
    for arg in "$@"; do
        [[ $arg == *' '* ]] && arg="'$arg'"
        text+=" $arg"
    done
    text=${text//"$WORK"/"$work"}
    text=${text//"$HERE"/bench}
    [[ -z ${WARM_TOKEN:-} ]] || text=${text//"$WARM_TOKEN"/"$token"}
    printf '%s' "$text"
}

# measure SLUG LABEL WRK-CPU SERVER-PID SERVER-CPU WRK-ARG...: the wrk arguments of the
# target come last: its options (-H, -s), the URL, and after `--` the script's arguments.
measure() {
    local slug=$1 label=$2 cpu=$3 server=$4 server_cpu=$5 round out
    shift 5
    local -a target=("$@")
    local -a args=("-t$THREADS" "-c$CONNECTIONS" "-d${DURATION}s" --latency "${target[@]}")
    if ((WARMUP > 0)); then
        log "$label: warm-up ${WARMUP}s"
        run_wrk "$cpu" "$WORK/warm-up-$slug.txt" "-t$THREADS" "-c$CONNECTIONS" "-d${WARMUP}s" \
            "${target[@]}"
    fi
    for ((round = 1; round <= ROUNDS; round++)); do
        out=$WORK/wrk-$slug-$round.txt
        log "$label: measuring ${DURATION}s (run $round of $ROUNDS)"
        snapshot "$cpu" "$server" "$out.before.json"
        # The shell's children's CPU times before and after: the difference is wrk's.
        times >"$out.times-before"
        run_wrk "$cpu" "$out" "${args[@]}"
        times >"$out.times-after"
        snapshot "$cpu" "$server" "$out.after.json"
        grep -E 'Requests/sec|Non-2xx|Socket errors|^Tokens:' "$out" | sed 's/^ */    /' >&2 \
            || true
        "$PYTHON" "$HERE/report.py" record --manifest "$MANIFEST" --slug "$slug" \
            --label "$label" --wrk-command "$(shown_command "$cpu" "${args[@]}")" \
            --wrk-output "$out" --wrk-times "$out.times-before" "$out.times-after" \
            --server-core "$server_cpu" --wrk-core "$cpu" --upstream-core "$LOAD_CPU" \
            --before "$out.before.json" --after "$out.after.json"
    done
}

# gateway_errors SLUG LABEL LOGFILE: explain non-2xx answers or socket errors from the log.
gateway_errors() {
    local slug=$1 label=$2 logfile=$3 summary=$WORK/errors-$1.txt count sockets
    local -a outs=("$WORK/wrk-$slug"-[0-9]*.txt)
    count=$(sed -nE 's/^ *Non-2xx or 3xx responses: *([0-9]+).*/\1/p' "${outs[@]}" \
        | awk '{ n += $1 } END { if (NR) print n }')
    sockets=$(sed -nE 's/^ *(Socket errors: .*)/\1/p' "${outs[@]}" | paste -sd ';' -)
    [[ -n $count || -n $sockets ]] || return 0
    {
        printf '%s: wrk saw %s non-2xx responses%s.\n' "$label" "${count:-0}" \
            "${sockets:+; $sockets}"
        printf 'The log includes the warm-up.\n'
        "$PYTHON" "$HERE/report.py" gateway-log "$logfile"
    } >"$summary"
    log "errors on '$label':"
    cat "$summary" >&2
    APPENDICES+=(--appendix "$summary")
    NOTES+=("'$label' had errors (${count:-0} non-2xx${sockets:+; $sockets}): the gateway's log
is summarised below.")
}

# token_note SLUG LABEL CACHED: which of the minted tokens the per-request row sent (from
# the `Tokens:` line of bench/tokens.lua); CACHED=1 when the server caches verified tokens.
token_note() {
    local slug=$1 label=$2 cached=$3 file line round runs="" reused=0 text
    local pattern='^Tokens: sent ([0-9]+), first ([0-9]+), last ([0-9]+), reused ([0-9]+)$'
    local -a files=()
    ((WARMUP > 0)) && files+=("$WORK/warm-up-$slug.txt")
    for ((round = 1; round <= ROUNDS; round++)); do
        files+=("$WORK/wrk-$slug-$round.txt")
    done
    for file in "${files[@]}"; do
        line=$(grep -E "$pattern" "$file") || die "$label: no 'Tokens:' line in $file"
        [[ $line =~ $pattern ]] || die "$label: unexpected '$line' in $file"
        if [[ $file == */warm-up-* ]]; then
            text="warm-up"
        else
            text=${file##*-}
            text="run ${text%.txt}"
        fi
        runs+="${runs:+, }$text: ${BASH_REMATCH[2]}-${BASH_REMATCH[3]}"
        reused=$((reused + BASH_REMATCH[4]))
    done
    text="'$label': tokens sent, by their number among the $COLD_TOKENS minted: $runs."
    if ((reused == 0)); then
        text+=" No request carried a token sent before."
    else
        text+=" $reused requests carried a token sent before (not enough tokens for the rate:
raise BENCH_COLD_TOKENS)"
        if ((cached)); then
            text+=", answered from the gateway's cache: the row is partly a warm one."
        else
            text+="; HAProxy keeps no cache, so they cost the same."
        fi
        log "warning: $reused requests of '$label' reused a token"
    fi
    NOTES+=("$text")
}

# refuses NAME URL: a token with a broken signature must not get through.
refuses() {
    local name=$1 url=$2 sig=${WARM_TOKEN##*.} rest=${WARM_TOKEN%.*} swap=A code
    [[ ${sig:10:1} == A ]] && swap=B
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 \
        -H "Authorization: Bearer $rest.${sig:0:10}$swap${sig:11}" "$url") || code=none
    [[ $code == 40[13] ]] || die "$name answered $code to a token with a bad signature"
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "$url") || code=none
    [[ $code == 40[13] ]] || die "$name answered $code to a request without a token"
}

# Other work on the machine skews every row: say so in the results.
BUSY=$("$PYTHON" "$HERE/report.py" cpu-busy 1)
BUSY_MAX=$(tail -n1 <<<"$BUSY")
log "CPU busy before the run: $(head -n1 <<<"$BUSY")"
if ((BUSY_MAX >= 10)); then
    log "warning: the machine is not idle; the figures will be lower and noisier"
    NOTES+=("The machine was not idle when the run started ($(head -n1 <<<"$BUSY") busy over
1 s): the figures are lower and noisier than on a quiet machine.")
fi

start "$LOAD_CPU" "$WORK/upstream/stdout.log" \
    nginx -p "$WORK/upstream/" -c "$WORK/upstream/nginx.conf" -e "$WORK/upstream/error.log"
UP_PID=$STARTED
wait_ready "upstream nginx" "$UP_PID" "$WORK/upstream/error.log" \
    "http://127.0.0.1:$UP_PORT$BENCH_PATH"
# The direct row: nothing proxies, so wrk takes the proxy core.
measure upstream "upstream nginx (direct)" "$PROXY_CPU" "$UP_PID" "$LOAD_CPU" \
    "http://127.0.0.1:$UP_PORT$BENCH_PATH"

start "$PROXY_CPU" "$WORK/nginx-proxy/stdout.log" nginx -p "$WORK/nginx-proxy/" \
    -c "$WORK/nginx-proxy/nginx.conf" -e "$WORK/nginx-proxy/error.log"
pid=$STARTED
wait_ready "nginx proxy" "$pid" "$WORK/nginx-proxy/error.log" \
    "http://127.0.0.1:$NGINX_PROXY_PORT$BENCH_PATH"
measure nginx-proxy "nginx proxy" "$LOAD_CPU" "$pid" "$PROXY_CPU" \
    "http://127.0.0.1:$NGINX_PROXY_PORT$BENCH_PATH"
stop "$pid"

haproxy -c -q -f "$WORK/haproxy/haproxy.cfg" || die "haproxy rejected $WORK/haproxy/haproxy.cfg"
start "$PROXY_CPU" "$WORK/haproxy/haproxy.log" haproxy -db -f "$WORK/haproxy/haproxy.cfg"
pid=$STARTED
wait_ready "haproxy" "$pid" "$WORK/haproxy/haproxy.log" "http://127.0.0.1:$HAPROXY_PORT$BENCH_PATH"
measure haproxy "haproxy proxy" "$LOAD_CPU" "$pid" "$PROXY_CPU" \
    "http://127.0.0.1:$HAPROXY_PORT$BENCH_PATH"
stop "$pid"

# The gateway reads GATEWAY_<SECTION>_<KEY> overrides: none from the caller's shell.
while IFS= read -r name; do
    unset "$name"
done < <(compgen -e | grep '^GATEWAY_' || true)

GW_URL="http://127.0.0.1:$GATEWAY_PORT$BENCH_PATH"
GW_LOG=$RESULTS/gateway-access-log-on.log
start "$PROXY_CPU" "$GW_LOG" "$GATEWAY" serve --config "$WORK/gateway/config.yaml"
pid=$STARTED
wait_ready "gateway" "$pid" "$GW_LOG" "$GW_URL"
measure gateway "gateway, public route (access log on)" "$LOAD_CPU" "$pid" "$PROXY_CPU" "$GW_URL"
stop "$pid"
gateway_errors gateway "gateway, public route (access log on)" "$GW_LOG"

if [[ $GATEWAY_QUIET == 1 ]]; then
    GW_LOG=$RESULTS/gateway-access-log-off.log
    start "$PROXY_CPU" "$GW_LOG" \
        "$GATEWAY" serve --config "$WORK/gateway/config-access-log-off.yaml"
    pid=$STARTED
    wait_ready "gateway (access log off)" "$pid" "$GW_LOG" "$GW_URL"
    measure gateway-quiet "gateway, public route (access log off)" "$LOAD_CPU" "$pid" \
        "$PROXY_CPU" "$GW_URL"
    stop "$pid"
    gateway_errors gateway-quiet "gateway, public route (access log off)" "$GW_LOG"
fi

if [[ $TOKEN_ROWS == 1 ]]; then
    GW_TOKEN_CONF=$WORK/gateway/config-token.yaml
    log "minting 1 + $COLD_TOKENS access tokens (about 30 s per 200,000 here)"
    minted=$SECONDS
    "$GATEWAY" init --config "$GW_TOKEN_CONF" >"$WORK/gateway/init.json"
    NETWORK_ID=$("$GATEWAY" network create --config "$GW_TOKEN_CONF" --name bench \
        | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["networkId"])') \
        || die "gateway network create failed"
    "$GATEWAY" tokens mint --config "$GW_TOKEN_CONF" --network "$NETWORK_ID" --users 1 \
        --out "$WORK/token-one.csv" >/dev/null
    # The CSV has CRLF line ends; the header line comes first.
    WARM_TOKEN=$(sed -n '2{s/^[^,]*,//;s/\r$//;p;}' "$WORK/token-one.csv")
    [[ -n $WARM_TOKEN ]] || die "no token in $WORK/token-one.csv"
    COLD_CSV=$WORK/tokens.csv
    "$GATEWAY" tokens mint --config "$GW_TOKEN_CONF" --network "$NETWORK_ID" \
        --users "$COLD_TOKENS" --out "$COLD_CSV" >/dev/null
    log "minted in $((SECONDS - minted)) s"
    AUTH=(-H "Authorization: Bearer $WARM_TOKEN")

    # One token on every request: verified once, then answered from the cache.
    GW_LOG=$RESULTS/gateway-token-warm.log
    start "$PROXY_CPU" "$GW_LOG" "$GATEWAY" serve --config "$GW_TOKEN_CONF"
    pid=$STARTED
    wait_ready "gateway (token checked)" "$pid" "$GW_LOG" "$GW_URL" "${AUTH[@]}"
    refuses "gateway (token checked)" "$GW_URL"
    # HAProxy verifies with the gateway's public key, taken from its JWKS.
    curl -fsS --max-time 5 "http://127.0.0.1:$GATEWAY_PORT/.well-known/jwks.json" \
        >"$WORK/jwks.json" || die "no JWKS from the gateway"
    JWT_KEY=$WORK/haproxy-jwt/signing-key.pem
    key_id=$("$PYTHON" "$HERE/report.py" jwks-pem --jwks "$WORK/jwks.json" \
        --token "$WARM_TOKEN" --out "$JWT_KEY") || die "no key for the tokens in the JWKS"
    read -r KID JWT_ALG <<<"$key_id"
    measure gateway-token-warm "gateway, token checked (cache warm)" "$LOAD_CPU" "$pid" \
        "$PROXY_CPU" "${AUTH[@]}" "$GW_URL"
    stop "$pid"
    gateway_errors gateway-token-warm "gateway, token checked (cache warm)" "$GW_LOG"

    # A token not sent before on every request, to a fresh gateway (empty cache). The
    # warm-up sends other tokens of the same file (bench/tokens.lua keeps a cursor).
    label="gateway, token checked (cold: a different token per request)"
    GW_LOG=$RESULTS/gateway-token-cold.log
    start "$PROXY_CPU" "$GW_LOG" "$GATEWAY" serve --config "$GW_TOKEN_CONF"
    pid=$STARTED
    wait_ready "gateway (token checked, cold)" "$pid" "$GW_LOG" "$GW_URL" "${AUTH[@]}"
    measure gateway-token-cold "$label" "$LOAD_CPU" "$pid" "$PROXY_CPU" \
        -s "$HERE/tokens.lua" "$GW_URL" -- "$COLD_CSV" "$WORK/cursor-gateway" "$THREADS"
    stop "$pid"
    gateway_errors gateway-token-cold "$label" "$GW_LOG"
    token_note gateway-token-cold "$label" 1

    # HAProxy checks what the gateway checks before the signature (alg, kid, iss, exp),
    # then the signature; any failure is a 403.
    write_haproxy_conf "$WORK/haproxy-jwt" "$HAPROXY_JWT_PORT" "\
    http-request set-var(txn.bearer) http_auth_bearer
    http-request set-var(txn.jwt_alg) var(txn.bearer),jwt_header_query('\$.alg')
    http-request deny unless { var(txn.jwt_alg) -m str $JWT_ALG }
    http-request deny unless { var(txn.bearer),jwt_header_query('\$.kid') -m str $KID }
    http-request deny unless { var(txn.bearer),jwt_payload_query('\$.iss') -m str gateway }
    http-request set-var(txn.now) date()
    http-request set-var(txn.ttl) var(txn.bearer),jwt_payload_query('\$.exp','int'),sub(txn.now)
    http-request deny unless { var(txn.ttl) -m int gt 0 }
    http-request deny unless { var(txn.bearer),jwt_verify(txn.jwt_alg,\"$JWT_KEY\") -m int 1 }
"
    haproxy -c -q -f "$WORK/haproxy-jwt/haproxy.cfg" \
        || die "haproxy rejected $WORK/haproxy-jwt/haproxy.cfg"
    HAPROXY_JWT_URL="http://127.0.0.1:$HAPROXY_JWT_PORT$BENCH_PATH"
    start "$PROXY_CPU" "$WORK/haproxy-jwt/haproxy.log" \
        haproxy -db -f "$WORK/haproxy-jwt/haproxy.cfg"
    pid=$STARTED
    wait_ready "haproxy (jwt_verify)" "$pid" "$WORK/haproxy-jwt/haproxy.log" \
        "$HAPROXY_JWT_URL" "${AUTH[@]}"
    refuses "haproxy (jwt_verify)" "$HAPROXY_JWT_URL"
    measure haproxy-jwt "haproxy jwt_verify (one token)" "$LOAD_CPU" "$pid" "$PROXY_CPU" \
        "${AUTH[@]}" "$HAPROXY_JWT_URL"
    label="haproxy jwt_verify (a different token per request)"
    measure haproxy-jwt-cold "$label" "$LOAD_CPU" "$pid" "$PROXY_CPU" \
        -s "$HERE/tokens.lua" "$HAPROXY_JWT_URL" -- "$COLD_CSV" "$WORK/cursor-haproxy" "$THREADS"
    stop "$pid"
    token_note haproxy-jwt-cold "$label" 0

    NOTES+=("Token rows: \`gateway tokens mint\` access tokens ($JWT_ALG, kid $KID) of a network
made with \`gateway network create\`, in the gateway's store. \$TOKEN is the one token of the
one-token rows; the per-request rows send the tokens of \$WORK/tokens.csv through
bench/tokens.lua, each token once. The gateway rows use config-token.yaml (access log on,
rule bench-token: \`/api/**\` any_token); the cold row runs on a freshly started gateway.
HAProxy checks alg, kid, iss and exp, then \`jwt_verify\` with the public key from the
gateway's JWKS; it keeps no cache. Both were checked to refuse a bad signature and a
missing token before measuring.")
fi

if [[ $AIOHTTP_FLOOR == 1 ]]; then
    FLOOR_URL="http://127.0.0.1:$FLOOR_PORT$BENCH_PATH"
    start "$PROXY_CPU" "$WORK/aiohttp-floor.log" "$PYTHON" "$HERE/aiohttp_floor.py" \
        --port "$FLOOR_PORT" --upstream "http://127.0.0.1:$UP_PORT"
    pid=$STARTED
    wait_ready "aiohttp minimal proxy" "$pid" "$WORK/aiohttp-floor.log" "$FLOOR_URL"
    measure aiohttp-floor "aiohttp minimal proxy (reference)" "$LOAD_CPU" "$pid" "$PROXY_CPU" \
        "$FLOOR_URL"
    stop "$pid"
    NOTES+=("'aiohttp minimal proxy (reference)' is bench/aiohttp_floor.py: aiohttp server and
client (uvloop) relaying the GET and nothing else, about the ceiling of a proxy built on
aiohttp's client on this core. The gateway forwards through its own client
(gateway/proxy/upstream_client.py, httptools), so it can be faster than this row.")
fi
stop "$UP_PID"

NOTES+=("Pinning: the proxy under test alone on CPU $PROXY_CPU; wrk ($THREADS thread(s))
and the upstream nginx (1 worker) share CPU $LOAD_CPU. Direct row: upstream nginx on CPU
$LOAD_CPU, wrk on CPU $PROXY_CPU. nginx and HAProxy run without access logs; the gateway
writes its log to a file.")
# awk reads all of the output: `head` could leave haproxy a SIGPIPE (fatal with pipefail).
VERSIONS="$(nginx -v 2>&1 | sed 's/^nginx version: //')"
VERSIONS+=", $(haproxy -v | awk 'NR == 1 { print $1, $2, $3 }')"
VERSIONS+=", $({ wrk -v 2>&1 || true; } | awk 'NR == 1 { print $1, $2 }'), $("$PYTHON" -c 'import platform, aiohttp
print("Python", platform.python_version(), "aiohttp", aiohttp.__version__)')"
if REVISION=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
    git -C "$ROOT" diff --quiet HEAD -- gateway 2>/dev/null || REVISION+=" + uncommitted changes"
    VERSIONS="gateway $REVISION, $VERSIONS"
fi
NOTES+=("Versions: $VERSIONS.")

REPRODUCE="BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_CONNECTIONS=$CONNECTIONS"
REPRODUCE+=" BENCH_THREADS=$THREADS BENCH_ROUNDS=$ROUNDS BENCH_LOAD_CPU=$LOAD_CPU"
REPRODUCE+=" BENCH_PROXY_CPU=$PROXY_CPU"
REPRODUCE+=" BENCH_GATEWAY_QUIET=$GATEWAY_QUIET BENCH_AIOHTTP_FLOOR=$AIOHTTP_FLOOR"
REPRODUCE+=" BENCH_TOKENS=$TOKEN_ROWS BENCH_COLD_TOKENS=$COLD_TOKENS"
REPRODUCE+=" bash bench/run.sh"

note_args=()
for note in "${NOTES[@]}"; do
    note_args+=(--note "$note")
done
echo
"$PYTHON" "$HERE/report.py" table --manifest "$MANIFEST" --out "$RESULTS/latest.md" \
    --command "$INVOCATION" --reproduce "$REPRODUCE" "${note_args[@]}" "${APPENDICES[@]}"
log "written to $RESULTS/latest.md"
