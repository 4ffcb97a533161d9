#!/usr/bin/env bash
# Passthrough benchmark on loopback: upstream nginx directly, nginx as a proxy, HAProxy
# as a proxy, the gateway on a `public` route (access log on, then off; then with 2
# workers), nginx and the gateway terminating TLS and mTLS (kept-alive connections), the
# gateway checking a bearer token (one token, cached; then a new token per request),
# HAProxy verifying the same JWTs (`jwt_verify`) and, for reference, a minimal aiohttp
# proxy (the floor) and the raw uvloop + httptools probe (the ceiling), all with wrk
# (HTTP/1.1 keep-alive). Every row has p50/p99 and the proxy's CPU time per request. See
# bench/README.md.
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
#   BENCH_TLS=1            also measure TLS and mTLS, nginx and the gateway (0: skip)
#   BENCH_WORKERS=2        workers of the multi-worker gateway row (0: skip the row)
#   BENCH_WORKERS_CPUS=0,1 cores of the multi-worker gateway (default: the load core and
#                          the proxy core, so it shares one with wrk and the upstream)
#   BENCH_RAW_PROBE=../shared/probes/raw_proxy.py  the ceiling probe, relative to the
#                          project root, run from there (empty: skip; missing: skipped)
#   BENCH_VENV=.venv       the project's virtualenv (must exist: `make bench` makes it)
#   BENCH_BUILD=compiled   the gateway rows' build: compiled (as the image ships it, built
#                          by bench/compiled_tree.sh into the run's folder) or interpreted
#   BENCH_INTERPRETED=1    with the compiled build, also measure the interpreted one on the
#                          public route (0: skip)
#
# Output: the table on stdout and in bench/results/latest.md; the gateway's logs in
# bench/results/gateway-*.log (overwritten by the next run).
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init bench "$@"
GATEWAY_QUIET=${BENCH_GATEWAY_QUIET:-1}
AIOHTTP_FLOOR=${BENCH_AIOHTTP_FLOOR:-1}
TOKEN_ROWS=${BENCH_TOKENS:-1}
COLD_TOKENS=${BENCH_COLD_TOKENS:-200000}
TLS_ROWS=${BENCH_TLS:-1}
WORKERS=${BENCH_WORKERS:-2}
WORKERS_CPUS=${BENCH_WORKERS_CPUS:-}
RAW_PROBE_SETTING=${BENCH_RAW_PROBE-../shared/probes/raw_proxy.py}
INTERPRETED_ROW=${BENCH_INTERPRETED:-1}

check_settings COLD_TOKENS WORKERS
[[ $TLS_ROWS == [01] ]] || die "BENCH_TLS must be 0 or 1, got '$TLS_ROWS'"
[[ $INTERPRETED_ROW == [01] ]] || die "BENCH_INTERPRETED must be 0 or 1, got '$INTERPRETED_ROW'"
((WORKERS != 1 && WORKERS <= 64)) \
    || die "BENCH_WORKERS must be 0 (no row) or 2-64, got $WORKERS"
WORKERS_CPUS=${WORKERS_CPUS:-$LOAD_CPU,$PROXY_CPU}
[[ $WORKERS_CPUS =~ ^[0-9]+(,[0-9]+)*$ ]] \
    || die "BENCH_WORKERS_CPUS must be a list of cores such as 0,1, got '$WORKERS_CPUS'"
((COLD_TOKENS >= THREADS && COLD_TOKENS <= 10000000)) \
    || die "BENCH_COLD_TOKENS must be between BENCH_THREADS and 10000000, got $COLD_TOKENS"
((CONNECTIONS >= THREADS)) || die "BENCH_CONNECTIONS must be at least BENCH_THREADS"
find_venv

# cc: the compiled build, and the library that gives wrk a client certificate.
TOOLS=(wrk:wrk nginx:nginx haproxy:haproxy curl:curl taskset:util-linux cc:gcc)
((TLS_ROWS == 0)) || TOOLS+=(openssl:openssl)  # TLS rows: certificates
install_missing 0 "${TOOLS[@]}"
check_cpus
for core in ${WORKERS_CPUS//,/ }; do
    ((core < $(nproc))) || die "BENCH_WORKERS_CPUS: no CPU $core here ($(nproc) CPUs)"
done
# The raw probe: an instrument outside the project, run where it is, never copied in.
RAW_PROBE=$RAW_PROBE_SETTING
[[ -z $RAW_PROBE || $RAW_PROBE == /* ]] || RAW_PROBE=$ROOT/$RAW_PROBE
make_work
use_build
((TLS_ROWS == 0)) || build_wrk_client_cert

# --- configurations ------------------------------------------------------------------
UP_PORT=$(port)
NGINX_PROXY_PORT=$(port)
HAPROXY_PORT=$(port)
GATEWAY_PORT=$(port)
HAPROXY_JWT_PORT=$(port)
FLOOR_PORT=$(port)
NGINX_TLS_PORT=$(port)
NGINX_MTLS_PORT=$(port)
GATEWAY_TLS_PORT=$(port)
RAW_PORT=$(port)

# The upstream answers every path alike, but the one that echoes the client certificate's
# fingerprint the gateway sent (to check the mTLS rows).
write_upstream_conf "${CERT_ECHO_LOCATION[@]}"
write_nginx_conf "$WORK/nginx-proxy" "$(nginx_upstream)
    server {
        listen 127.0.0.1:$NGINX_PROXY_PORT backlog=4096;
        $(nginx_proxy_location)
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

# The gateway's configurations share the folder (store, signing keys), so tokens minted
# with one are valid for all.
GW_HTTP="{host: 127.0.0.1, port: $GATEWAY_PORT}"
write_gateway_conf "$WORK/gateway/config.yaml" "$GW_HTTP" null true bench.yaml
write_gateway_conf "$WORK/gateway/config-access-log-off.yaml" "$GW_HTTP" null false bench.yaml
# The token rows: the gateway as shipped (access log on) with a rule asking for a token on
# /api/**. The passthrough rows keep the public-only policy, on the same path.
write_gateway_conf "$WORK/gateway/config-token.yaml" "$GW_HTTP" null true bench-token.yaml
# The multi-worker row: the first configuration with more workers.
GW_WORKERS=$WORKERS write_gateway_conf "$WORK/gateway/config-workers.yaml" "$GW_HTTP" null \
    true bench.yaml
# The TLS rows: the HTTPS listener only, access log on, the public-only policy but for
# the pinned row's path: any token, and with the network's mTLS on its pinned certificate.
write_gateway_conf "$WORK/gateway/config-tls.yaml" null "$(gateway_https "$GATEWAY_TLS_PORT")" \
    true bench-tls.yaml
PINNED_PATH=/api/v3/pinned/bench
write_nginx_tls_conf "$WORK/nginx-tls" "$NGINX_TLS_PORT" "$NGINX_MTLS_PORT" "$WORK/gateway/certs"
write_policy "$WORK/gateway/policies/bench.yaml"
write_policy "$WORK/gateway/policies/bench-token.yaml" '  - name: bench-token' \
    '    match: {path: "/api/**"}' '    auth: any_token'
write_policy "$WORK/gateway/policies/bench-tls.yaml" '  - name: bench-pinned' \
    "    match: {path: \"$PINNED_PATH\"}" '    auth: any_token' '    mtls: true'

# --- measuring -----------------------------------------------------------------------
rm -f "$RESULTS"/gateway-*.log

# measure_wrk SLUG LABEL WRK-CPU SERVER-PID SERVER-CPU WRK-ARG...: `measure` with wrk, the
# ratio to the nginx proxy row (report.py's default baseline).
measure_wrk() { measure "$1" "$2" wrk "" "${@:3}"; }

# gateway_errors SLUG LABEL LOGFILE: explain non-2xx answers or socket errors from the log.
gateway_errors() {
    local slug=$1 label=$2 logfile=$3 summary=$WORK/errors-$1.txt count sockets silent
    local -a outs=("$WORK/load-$slug"-[0-9]*.txt)
    count=$(sed -nE 's/^ *Non-2xx or 3xx responses: *([0-9]+).*/\1/p' "${outs[@]}" \
        | awk '{ n += $1 } END { if (NR) print n }')
    sockets=$(sed -nE 's/^ *(Socket errors: .*)/\1/p' "${outs[@]}" | paste -sd ';' -)
    # A run that completed no request at all (the server stalled) is an error too.
    silent=$(cat "${outs[@]}" | grep -cE '^ *0 requests in ' || true)
    if ((silent)); then
        sockets+="${sockets:+; }$silent run(s) completed no request"
    fi
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
        files+=("$WORK/load-$slug-$round.txt")
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

note_busy

start_upstream
# The direct row: nothing proxies, so wrk takes the proxy core.
measure_wrk upstream "upstream nginx (direct)" "$PROXY_CPU" "$UP_PID" "$LOAD_CPU" \
    "http://127.0.0.1:$UP_PORT$BENCH_PATH"

start "$PROXY_CPU" "$WORK/nginx-proxy/stdout.log" nginx -p "$WORK/nginx-proxy/" \
    -c "$WORK/nginx-proxy/nginx.conf" -e "$WORK/nginx-proxy/error.log"
pid=$STARTED
wait_ready "nginx proxy" "$pid" "$WORK/nginx-proxy/error.log" \
    "http://127.0.0.1:$NGINX_PROXY_PORT$BENCH_PATH"
measure_wrk nginx-proxy "nginx proxy" "$LOAD_CPU" "$pid" "$PROXY_CPU" \
    "http://127.0.0.1:$NGINX_PROXY_PORT$BENCH_PATH"
stop "$pid"

haproxy -c -q -f "$WORK/haproxy/haproxy.cfg" || die "haproxy rejected $WORK/haproxy/haproxy.cfg"
start "$PROXY_CPU" "$WORK/haproxy/haproxy.log" haproxy -db -f "$WORK/haproxy/haproxy.cfg"
pid=$STARTED
wait_ready "haproxy" "$pid" "$WORK/haproxy/haproxy.log" "http://127.0.0.1:$HAPROXY_PORT$BENCH_PATH"
measure_wrk haproxy "haproxy proxy" "$LOAD_CPU" "$pid" "$PROXY_CPU" \
    "http://127.0.0.1:$HAPROXY_PORT$BENCH_PATH"
stop "$pid"

unset_gateway_env

GW_URL="http://127.0.0.1:$GATEWAY_PORT$BENCH_PATH"
GW_LOG=$RESULTS/gateway-access-log-on.log
start "$PROXY_CPU" "$GW_LOG" "$GATEWAY" serve --config "$WORK/gateway/config.yaml"
pid=$STARTED
wait_ready "gateway" "$pid" "$GW_LOG" "$GW_URL"
measure_wrk gateway "gateway, public route (access log on)" "$LOAD_CPU" "$pid" "$PROXY_CPU" \
    "$GW_URL"
stop "$pid"
gateway_errors gateway "gateway, public route (access log on)" "$GW_LOG"

if [[ $BUILD == compiled && $INTERPRETED_ROW == 1 ]]; then
    label="gateway, public route (access log on), interpreted"
    GW_LOG=$RESULTS/gateway-interpreted.log
    start "$PROXY_CPU" "$GW_LOG" env -u PYTHONPATH "$GATEWAY" serve --config "$WORK/gateway/config.yaml"
    pid=$STARTED
    wait_ready "gateway (interpreted)" "$pid" "$GW_LOG" "$GW_URL"
    grep -q '(interpreted) starting' "$GW_LOG" || die "gateway (interpreted): not the interpreted build"
    measure_wrk gateway-interpreted "$label" "$LOAD_CPU" "$pid" "$PROXY_CPU" "$GW_URL"
    stop "$pid"
    gateway_errors gateway-interpreted "$label" "$GW_LOG"
    NOTES+=("'$label': the first gateway row with the same sources interpreted (no
compiled build on PYTHONPATH): what compiling the data plane's request path wins.")
fi

if [[ $GATEWAY_QUIET == 1 ]]; then
    GW_LOG=$RESULTS/gateway-access-log-off.log
    start "$PROXY_CPU" "$GW_LOG" \
        "$GATEWAY" serve --config "$WORK/gateway/config-access-log-off.yaml"
    pid=$STARTED
    wait_ready "gateway (access log off)" "$pid" "$GW_LOG" "$GW_URL"
    measure_wrk gateway-quiet "gateway, public route (access log off)" "$LOAD_CPU" "$pid" \
        "$PROXY_CPU" "$GW_URL"
    stop "$pid"
    gateway_errors gateway-quiet "gateway, public route (access log off)" "$GW_LOG"
fi

if ((WORKERS > 1)); then
    # Every worker listens (SO_REUSEPORT) before the warm-up: wait for each one's line.
    workers_cores="CPU $WORKERS_CPUS"
    [[ $WORKERS_CPUS != *,* ]] || workers_cores="CPUs ${WORKERS_CPUS//,/+}"
    label="gateway, public route, $WORKERS workers on $workers_cores"
    shared=""
    [[ ,$WORKERS_CPUS, == *",$LOAD_CPU,"* ]] && shared=" (shared with wrk and the upstream)"
    label+=$shared
    GW_LOG=$RESULTS/gateway-workers.log
    start "$WORKERS_CPUS" "$GW_LOG" "$GATEWAY" serve --config "$WORK/gateway/config-workers.yaml"
    pid=$STARTED
    wait_ready "gateway ($WORKERS workers)" "$pid" "$GW_LOG" "$GW_URL"
    for ((i = 0; i < 300; i++)); do
        (($(grep -c '"listening on' "$GW_LOG" || true) >= WORKERS)) && break
        sleep 0.1
    done
    (($(grep -c '"listening on' "$GW_LOG" || true) >= WORKERS)) \
        || die "gateway ($WORKERS workers): fewer than $WORKERS 'listening on' lines in $GW_LOG"
    measure_wrk gateway-workers "$label" "$LOAD_CPU" "$pid" "$WORKERS_CPUS" "$GW_URL"
    stop "$pid"
    gateway_errors gateway-workers "$label" "$GW_LOG"
    NOTES+=("'$label': the gateway as in the first gateway row (access log on) with
\`server.workers: $WORKERS\`: a supervisor process forks $WORKERS workers that share the
port (SO_REUSEPORT); all of them pinned with \`taskset -c $WORKERS_CPUS\`$shared. Its server
CPU and CPU per request count the supervisor and every worker; its CPU share is of those
cores together (100%: all of them busy). The ratio column divides by the nginx proxy (1
worker on CPU $PROXY_CPU).")
fi

if [[ $TLS_ROWS == 1 ]]; then
    # The gateway's CA and server certificate (nginx's too), and a client certificate the
    # gateway signs for a network (CSR posted with an admin token).
    make_client_certs "$WORK/gateway" "$WORK/gateway/config-tls.yaml" "$GATEWAY_TLS_PORT" \
        bench-tls
    # nginx and the gateway stay up through the four rows; the one not measured is idle.
    start "$PROXY_CPU" "$WORK/nginx-tls/stdout.log" nginx -p "$WORK/nginx-tls/" \
        -c "$WORK/nginx-tls/nginx.conf" -e "$WORK/nginx-tls/error.log"
    nginx_pid=$STARTED
    GW_TLS_LOG=$RESULTS/gateway-tls.log
    start "$PROXY_CPU" "$GW_TLS_LOG" "$GATEWAY" serve --config "$WORK/gateway/config-tls.yaml"
    gw_pid=$STARTED
    NGINX_TLS_URL="https://127.0.0.1:$NGINX_TLS_PORT$BENCH_PATH"
    NGINX_MTLS_URL="https://127.0.0.1:$NGINX_MTLS_PORT$BENCH_PATH"
    GW_TLS_URL="https://127.0.0.1:$GATEWAY_TLS_PORT$BENCH_PATH"
    wait_ready "nginx (TLS)" "$nginx_pid" "$WORK/nginx-tls/error.log" "$NGINX_TLS_URL" \
        --cacert "$CA"
    wait_ready "nginx (mTLS)" "$nginx_pid" "$WORK/nginx-tls/error.log" "$NGINX_MTLS_URL" \
        --cacert "$CA" --cert "$CLIENT_PEM"
    wait_ready "gateway (TLS)" "$gw_pid" "$GW_TLS_LOG" "$GW_TLS_URL" --cacert "$CA"
    wait_ready "gateway (mTLS)" "$gw_pid" "$GW_TLS_LOG" "$GW_TLS_URL" --cacert "$CA" \
        --cert "$CLIENT_PEM"
    check_client_certs "$NGINX_MTLS_PORT" "$GATEWAY_TLS_PORT"
    check_wrk_client_cert "$GATEWAY_TLS_PORT"
    GW_PINNED_URL="https://127.0.0.1:$GATEWAY_TLS_PORT$PINNED_PATH"
    check_pinned "$GW_PINNED_URL"

    measure nginx-tls "nginx, TLS, keep-alive" wrk nginx-tls "$LOAD_CPU" "$nginx_pid" \
        "$PROXY_CPU" "$NGINX_TLS_URL"
    measure gateway-tls "gateway, TLS, keep-alive" wrk nginx-tls "$LOAD_CPU" "$gw_pid" \
        "$PROXY_CPU" "$GW_TLS_URL"
    # wrk presents the client certificate through bench/wrk_client_cert.so (LD_PRELOAD).
    wrk_client_cert "$CLIENT_PEM"
    measure nginx-mtls "nginx, mTLS, keep-alive" wrk nginx-mtls "$LOAD_CPU" "$nginx_pid" \
        "$PROXY_CPU" "$NGINX_MTLS_URL"
    measure gateway-mtls "gateway, mTLS, keep-alive" wrk nginx-mtls "$LOAD_CPU" "$gw_pid" \
        "$PROXY_CPU" "$GW_TLS_URL"
    measure gateway-mtls-pinned "gateway, mTLS, token checked, certificate pinned" wrk \
        nginx-mtls "$LOAD_CPU" "$gw_pid" "$PROXY_CPU" \
        -H "Authorization: Bearer $TLS_ADMIN_TOKEN" "$GW_PINNED_URL"
    wrk_client_cert ""
    stop "$gw_pid"
    stop "$nginx_pid"
    gateway_errors gateway-tls "gateway, TLS, keep-alive" "$GW_TLS_LOG"
    gateway_errors gateway-mtls "gateway, mTLS, keep-alive" "$GW_TLS_LOG"
    gateway_errors gateway-mtls-pinned "gateway, mTLS, token checked, certificate pinned" \
        "$GW_TLS_LOG"
    SERVER_KEY=$(openssl x509 -in "$CERTS/server.pem" -noout -text \
        | sed -nE 's/^ *(Public Key Algorithm|NIST CURVE): *(.*)$/\2/p' | paste -sd ' ' -)
    NOTES+=("TLS rows: nginx (1 worker, no access log, \`ssl_protocols TLSv1.2 TLSv1.3\`,
default ciphers and session tickets, proxying as the nginx proxy row) and the gateway (1
worker, the HTTPS listener only, access log on, the public route of the passthrough rows)
use the server certificate and key \`gateway init\` made (${SERVER_KEY:-key type unknown},
signed by the gateway CA); wrk over https on kept-alive connections, so there is one
handshake per connection, during the warm-up. The ratio column of a gateway TLS row
divides by the nginx row of the same transport just above it. mTLS: the client
certificate is an EC P-256 key whose CSR the gateway signed (\`POST
/api/v3/networks/certificates\` with an admin token of a network made with \`gateway
network create --secure\`); wrk 4.1 cannot present one, so bench/wrk_client_cert.so
(LD_PRELOAD) loads it into wrk's OpenSSL context. nginx's mTLS listener requires it
(\`ssl_verify_client on\`, the gateway CA); the gateway asks every client for one, verifies
it against its CA and sends its SHA-256 fingerprint upstream with every request. Checked
before measuring: nginx answers 400 without a certificate and to a self-signed one; the
gateway fails the handshake with the self-signed one and passes our fingerprint upstream,
also to wrk with the library (\`bench/expect_body.lua\`). The pinned row asks for
$PINNED_PATH, a rule with \`auth: any_token\` and \`mtls: true\` on a network with mTLS on:
the admin's token (one token, cache warm) and the certificate, looked up among the
network's uploads on every request. Checked before measuring: 401 without either.")
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
    # The issuer the gateway signs with (tokens.issuer, or the one its store recorded).
    ISSUER=$("$PYTHON" -c 'import sys, jwt; print(jwt.decode(sys.argv[1],
        options={"verify_signature": False})["iss"])' "$WARM_TOKEN")
    measure_wrk gateway-token-warm "gateway, token checked (cache warm)" "$LOAD_CPU" "$pid" \
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
    measure_wrk gateway-token-cold "$label" "$LOAD_CPU" "$pid" "$PROXY_CPU" \
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
    http-request deny unless { var(txn.bearer),jwt_payload_query('\$.iss') -m str $ISSUER }
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
    measure_wrk haproxy-jwt "haproxy jwt_verify (one token)" "$LOAD_CPU" "$pid" "$PROXY_CPU" \
        "${AUTH[@]}" "$HAPROXY_JWT_URL"
    label="haproxy jwt_verify (a different token per request)"
    measure_wrk haproxy-jwt-cold "$label" "$LOAD_CPU" "$pid" "$PROXY_CPU" \
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
    measure_wrk aiohttp-floor "aiohttp minimal proxy (reference)" "$LOAD_CPU" "$pid" \
        "$PROXY_CPU" "$FLOOR_URL"
    stop "$pid"
    NOTES+=("'aiohttp minimal proxy (reference)' is bench/aiohttp_floor.py: aiohttp server and
client (uvloop) relaying the GET and nothing else, about the ceiling of a proxy built on
aiohttp's client on this core. The gateway forwards through its own client
(gateway/proxy/upstream_client.py, httptools), so it can be faster than this row.")
fi
if [[ -n $RAW_PROBE && -f $RAW_PROBE ]]; then
    RAW_URL="http://127.0.0.1:$RAW_PORT$BENCH_PATH"
    label="raw probe: uvloop + httptools proxy (ceiling)"
    start "$PROXY_CPU" "$WORK/raw-probe.log" "$PYTHON" "$RAW_PROBE" --port "$RAW_PORT" \
        --upstream "127.0.0.1:$UP_PORT"
    pid=$STARTED
    wait_ready "raw probe" "$pid" "$WORK/raw-probe.log" "$RAW_URL"
    measure_wrk raw-probe "$label" "$LOAD_CPU" "$pid" "$PROXY_CPU" "$RAW_URL"
    stop "$pid"
    RAW_SHA=$(sha256sum "$RAW_PROBE" | cut -c1-12)
    NOTES+=("'$label' is $(realpath "$RAW_PROBE") (sha256 $RAW_SHA...), an instrument kept
outside the project and run from there with the project's Python: asyncio Protocols on
uvloop, httptools on both sides, one kept-alive upstream connection per client connection,
GET without bodies only, no policy, logging or header rules. About the most a Python proxy
can do per request on this core: the ceiling of the gateway's rows.")
elif [[ -n $RAW_PROBE ]]; then
    log "warning: no raw probe at $RAW_PROBE: its row is skipped"
    NOTES+=("No raw probe row: $RAW_PROBE_SETTING (BENCH_RAW_PROBE, from the project root) was
not found.")
else
    NOTES+=("No raw probe row: BENCH_RAW_PROBE is empty.")
fi
stop "$UP_PID"

PINNING="Pinning: the proxy under test alone on CPU $PROXY_CPU; wrk ($THREADS thread(s))
and the upstream nginx (1 worker) share CPU $LOAD_CPU. Direct row: upstream nginx on CPU
$LOAD_CPU, wrk on CPU $PROXY_CPU."
((WORKERS < 2)) \
    || PINNING+=" The $WORKERS-worker gateway row: the gateway on $workers_cores$shared."
NOTES+=("$PINNING nginx and HAProxy run without access logs; the gateway writes its log to a
file.")
# awk reads all of the output: `head` could leave haproxy a SIGPIPE (fatal with pipefail).
VERSIONS="$(nginx -v 2>&1 | sed 's/^nginx version: //')"
VERSIONS+=", $(haproxy -v | awk 'NR == 1 { print $1, $2, $3 }')"
VERSIONS+=", $({ wrk -v 2>&1 || true; } | awk 'NR == 1 { print $1, $2 }')"
VERSIONS+=", $("$PYTHON" -c 'import platform, ssl, aiohttp
openssl = " ".join(ssl.OPENSSL_VERSION.split()[:2])
print("Python", platform.python_version(), "with", openssl, "aiohttp", aiohttp.__version__)')"
((TLS_ROWS == 0)) || VERSIONS+=", $(openssl version | awk '{ print $1, $2 }') (wrk, nginx)"
note_versions "$VERSIONS"

SETTINGS="BENCH_GATEWAY_QUIET=$GATEWAY_QUIET BENCH_AIOHTTP_FLOOR=$AIOHTTP_FLOOR"
SETTINGS+=" BENCH_TOKENS=$TOKEN_ROWS BENCH_COLD_TOKENS=$COLD_TOKENS BENCH_TLS=$TLS_ROWS"
SETTINGS+=" BENCH_WORKERS=$WORKERS BENCH_WORKERS_CPUS=$WORKERS_CPUS"
SETTINGS+=" BENCH_RAW_PROBE=$(printf '%q' "$RAW_PROBE_SETTING")"
SETTINGS+=" BENCH_BUILD=$BUILD BENCH_INTERPRETED=$INTERPRETED_ROW"
write_table latest.md "$SETTINGS" --ratio-header "ratio to nginx req/s (same transport)" \
    --ratio-to "aiohttp-floor=ratio to aiohttp floor" \
    --ratio-to "haproxy-jwt=ratio to haproxy jwt_verify"
