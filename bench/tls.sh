#!/usr/bin/env bash
# TLS benchmark on loopback: nginx and the gateway terminating TLS in front of the same
# upstream nginx (plain HTTP, keep-alive), without and with a client certificate (mTLS),
# over kept-alive connections and with a new connection (a TLS handshake) per request.
# Each gateway row is followed by its ratio to the nginx row above it. See bench/README.md.
#
#   bash bench/tls.sh          (or: make bench-tls)
#
# Rows (nginx, then the gateway, for each):
#   TLS, keep-alive (wrk)                        wrk over https
#   mTLS, keep-alive (wrk)                       wrk with client.pem (bench/wrk_client_cert.c)
#   TLS, keep-alive (ab)                         ab -k, the same-tool twin of the mTLS row
#   mTLS, keep-alive (ab)                        ab -k -E client.pem (HTTP/1.0: see the README)
#   TLS, new connection per request (wrk)        wrk -H 'Connection: close' (resumes sessions)
#   TLS, new connection per request (ab)         ab without -k: a full handshake per request
#   mTLS, new connection per request (ab)        ab -E client.pem without -k
#
# Settings (environment):
#   BENCH_DURATION=10      measured seconds per target
#   BENCH_WARMUP=3         unrecorded warm-up seconds per target, same load
#   BENCH_CONNECTIONS=64   wrk connections and ab concurrency (-c)
#   BENCH_THREADS=1        wrk threads (ab has one)
#   BENCH_ROUNDS=1         measured runs per target; the table shows the best (noisy hosts)
#   BENCH_LOAD_CPU=0       core for wrk/ab and the upstream nginx
#   BENCH_PROXY_CPU=1      core for the TLS server under test (nginx or the gateway)
#   BENCH_AB_TLS=1         also measure plain TLS with ab, the twins of the mTLS rows (0: skip)
#   BENCH_AB_MAX_RATE=100000  ab's -n is this times the seconds (ab keeps a record per
#                          request, allocated up front); -t ends the run first
#   BENCH_VENV=.venv       the project's virtualenv (must exist: `make bench-tls` makes it)
#   BENCH_BUILD=compiled   the gateway rows' build: compiled (as the image ships it, built
#                          by bench/compiled_tree.sh into the run's folder) or interpreted
#
# Output: the table on stdout and in bench/results/tls-latest.md; the gateway's log in
# bench/results/tls-gateway.log (overwritten by the next run).
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init bench-tls "$@"
AB_TLS=${BENCH_AB_TLS:-1}
AB_MAX_RATE=${BENCH_AB_MAX_RATE:-100000}

# Seconds a load run may take beyond its duration before `timeout` ends it.
LOAD_GRACE=30
# ab: seconds to wait for each response.
AB_TIMEOUT=10

check_settings AB_MAX_RATE
[[ $AB_TLS == [01] ]] || die "BENCH_AB_TLS must be 0 or 1, got '$AB_TLS'"
((DURATION <= 3600 && WARMUP <= 3600)) || die "BENCH_DURATION and BENCH_WARMUP: at most 3600"
((CONNECTIONS >= THREADS)) || die "BENCH_CONNECTIONS must be at least BENCH_THREADS"
((AB_MAX_RATE >= 1000 && AB_MAX_RATE <= 1000000)) \
    || die "BENCH_AB_MAX_RATE must be between 1000 and 1000000, got $AB_MAX_RATE"
find_venv

install_missing 600 wrk:wrk nginx:nginx ab:apache2-utils openssl:openssl curl:curl \
    taskset:util-linux timeout:coreutils cc:gcc
# `ab -h` exits non-zero: keep its text, then look.
AB_HELP=$(ab -h 2>&1 || true)
[[ $AB_HELP == *'-E certfile'* ]] \
    || die "this ab cannot present a client certificate (no -E option): apache2-utils 2.4.x has it"
check_cpus
make_work
use_build
build_wrk_client_cert

# --- configurations ------------------------------------------------------------------
UP_PORT=$(port)
NGINX_TLS_PORT=$(port)
NGINX_MTLS_PORT=$(port)
GATEWAY_PORT=$(port)

GW_DIR=$WORK/gateway

write_upstream_conf "${CERT_ECHO_LOCATION[@]}"

# nginx terminating TLS with the gateway's server certificate, proxying to the upstream as
# bench/run.sh's nginx proxy does; a second listener requires a client certificate that
# chains to the gateway CA.
write_nginx_tls_conf "$WORK/nginx-tls" "$NGINX_TLS_PORT" "$NGINX_MTLS_PORT" "$GW_DIR/certs"

# The gateway: the HTTPS listener only, access log on (as shipped, as in bench/run.sh); CA
# and server certificate from `gateway init` in $GW_DIR.
write_gateway_conf "$GW_DIR/config.yaml" null "$(gateway_https "$GATEWAY_PORT")" true \
    bench.yaml
write_policy "$GW_DIR/policies/bench.yaml"

# --- measuring -----------------------------------------------------------------------
declare -a GATEWAY_ERRORS=()

# ab, the load tool of the mTLS rows (wrk has no client certificate). -t before -n: -t
# alone would mean -n 50000. -r: count receive errors, not abort.
load_args_ab() {
    LOAD_ARGS=(-q -r -s "$AB_TIMEOUT" -c "$CONNECTIONS" -t "$1" -n "$(($1 * AB_MAX_RATE))")
}
LOAD_SUMMARY[ab]='^(Requests per second|Complete requests|Failed|Non-2xx|Write errors|Keep-Alive)'

# load_errors SLUG: the error lines of the target's measured runs, `;`-separated (empty: none).
load_errors() {
    local -a outs=("$WORK/load-$1"-[0-9]*.txt)
    sed -nE 's/^ *(Non-2xx or 3xx responses|Socket errors|Non-2xx responses|Failed requests|Write errors): *(.*[^ ]) *$/\1: \2/p' \
        "${outs[@]}" | grep -vE ': 0$|: connect 0, read 0, write 0, timeout 0$' \
        | paste -sd ';' - || true
}

# keepalive_check SLUG LABEL: ab -k rows: did every request go over a kept-alive connection?
keepalive_check() {
    local slug=$1 label=$2 out complete kept
    for out in "$WORK/load-$slug"-[0-9]*.txt; do
        complete=$(sed -nE 's/^Complete requests: *([0-9]+).*/\1/p' "$out")
        kept=$(sed -nE 's/^Keep-Alive requests: *([0-9]+).*/\1/p' "$out")
        if [[ -z $kept || -z $complete ]] || ((kept + CONNECTIONS < complete)); then
            log "warning: '$label': ${kept:-no} keep-alive requests of ${complete:-?}"
            NOTES+=("'$label': only ${kept:-0} of ${complete:-?} requests went over a kept-alive
connection (ab -k; the server closed the others), so the row includes handshakes.")
            return 0
        fi
    done
}

# pair NAME TOOL CONNECTIONS TARGET-OPTION...: the nginx row, then the gateway row (ratio
# to it), on the nginx listener of NAME (tls or mtls) and the gateway's one HTTPS listener.
# CONNECTIONS: ka (keep-alive) or new (a new connection per request).
declare -a ROWS=()
declare -A LABELS=()
pair() {
    local name=$1 tool=$2 connections=$3 nginx_port=$NGINX_TLS_PORT mode=TLS slug what
    shift 3
    if [[ $name == mtls ]]; then
        nginx_port=$NGINX_MTLS_PORT
        mode=mTLS
    fi
    what=keep-alive
    [[ $connections == ka ]] || what="new connection per request"
    slug=$name-$connections-$tool
    LABELS[nginx-$slug]="nginx, $mode, $what ($tool)"
    LABELS[gateway-$slug]="gateway, $mode, $what ($tool)"
    measure "nginx-$slug" "${LABELS[nginx-$slug]}" "$tool" "nginx-$slug" "$LOAD_CPU" \
        "$NGINX_PID" "$PROXY_CPU" "$@" "https://127.0.0.1:$nginx_port$BENCH_PATH"
    measure "gateway-$slug" "${LABELS[gateway-$slug]}" "$tool" "nginx-$slug" "$LOAD_CPU" \
        "$GW_PID" "$PROXY_CPU" "$@" "https://127.0.0.1:$GATEWAY_PORT$BENCH_PATH"
    ROWS+=("nginx-$slug" "gateway-$slug")
}

note_busy
unset_gateway_env

start_upstream
# The gateway's CA and server certificate, and a client certificate it signs.
make_client_certs "$GW_DIR" "$GW_DIR/config.yaml" "$GATEWAY_PORT" bench-tls

# --- the servers under test: both stay up; the one not measured is idle -------------
start "$PROXY_CPU" "$WORK/nginx-tls/stdout.log" nginx -p "$WORK/nginx-tls/" \
    -c "$WORK/nginx-tls/nginx.conf" -e "$WORK/nginx-tls/error.log"
NGINX_PID=$STARTED
GW_URL="https://127.0.0.1:$GATEWAY_PORT$BENCH_PATH"
GW_LOG=$RESULTS/tls-gateway.log
start "$PROXY_CPU" "$GW_LOG" "$GATEWAY" serve --config "$GW_DIR/config.yaml"
GW_PID=$STARTED

wait_ready "nginx (TLS)" "$NGINX_PID" "$WORK/nginx-tls/error.log" \
    "https://127.0.0.1:$NGINX_TLS_PORT$BENCH_PATH" --cacert "$CA"
wait_ready "nginx (mTLS)" "$NGINX_PID" "$WORK/nginx-tls/error.log" \
    "https://127.0.0.1:$NGINX_MTLS_PORT$BENCH_PATH" --cacert "$CA" --cert "$CLIENT_PEM"
wait_ready "gateway (TLS)" "$GW_PID" "$GW_LOG" "$GW_URL" --cacert "$CA"
wait_ready "gateway (mTLS)" "$GW_PID" "$GW_LOG" "$GW_URL" --cacert "$CA" --cert "$CLIENT_PEM"

check_client_certs "$NGINX_MTLS_PORT" "$GATEWAY_PORT"
check_wrk_client_cert "$GATEWAY_PORT"

# tls_params PORT: `TLSv1.3, TLS_AES_256_GCM_SHA384, X25519, sessions resumed` as
# openssl s_client sees a server (the session of a first connection offered to a second).
tls_params() {
    local port=$1 request out session=$WORK/session-$1.pem params resumed="not resumed"
    request=$(printf 'GET %s HTTP/1.0\r\n\r\n' "$BENCH_PATH")
    out=$(timeout 10 openssl s_client -connect "127.0.0.1:$port" -CAfile "$CA" \
        -sess_out "$session" -ign_eof <<<"$request" 2>/dev/null) || true
    params=$(sed -nE '/^New, (TLS[^,]*), Cipher is (.*)$/ { s//\1, \2/p; q; }' <<<"$out")
    params+=", $(sed -nE '/^Server Temp Key: ([^,]*).*/ { s//\1/p; q; }' <<<"$out")"
    if [[ -s $session ]]; then
        out=$(timeout 10 openssl s_client -connect "127.0.0.1:$port" -CAfile "$CA" \
            -sess_in "$session" -ign_eof <<<"$request" 2>/dev/null) || true
        [[ $out != *$'\nReused, '* ]] || resumed="sessions resumed"
    fi
    printf '%s, %s' "${params:-unknown}" "$resumed"
}
NGINX_TLS_PARAMS=$(tls_params "$NGINX_TLS_PORT")
GATEWAY_TLS_PARAMS=$(tls_params "$GATEWAY_PORT")
log "nginx: $NGINX_TLS_PARAMS; gateway: $GATEWAY_TLS_PARAMS"

pair tls wrk ka
# wrk presents the client certificate through bench/wrk_client_cert.so (LD_PRELOAD).
wrk_client_cert "$CLIENT_PEM"
pair mtls wrk ka
wrk_client_cert ""
if ((AB_TLS)); then pair tls ab ka -k; fi
pair mtls ab ka -k -E "$CLIENT_PEM"
pair tls wrk new -H 'Connection: close'
if ((AB_TLS)); then pair tls ab new; fi
pair mtls ab new -E "$CLIENT_PEM"

for slug in "${ROWS[@]}"; do
    label=${LABELS[$slug]}
    if [[ $slug == *-ka-ab ]]; then keepalive_check "$slug" "$label"; fi
    errors=$(load_errors "$slug")
    [[ -z $errors ]] && continue
    log "errors on '$label': $errors"
    [[ $slug == gateway-* ]] && GATEWAY_ERRORS+=("'$label' ($errors)")
done
stop "$GW_PID"
stop "$NGINX_PID"
stop "$UP_PID"

if ((${#GATEWAY_ERRORS[@]})); then
    summary=$WORK/errors-gateway.txt
    {
        printf 'Gateway rows with errors: %s.\n' "$(IFS=,; printf '%s' "${GATEWAY_ERRORS[*]}")"
        printf 'The log covers every gateway row, warm-ups included.\n'
        "$PYTHON" "$HERE/report.py" gateway-log "$GW_LOG"
    } >"$summary"
    cat "$summary" >&2
    APPENDICES+=(--appendix "$summary")
    NOTES+=("Gateway rows had errors: the gateway's log is summarised below.")
fi

SERVER_KEY=$(openssl x509 -in "$CERTS/server.pem" -noout -text \
    | sed -nE 's/^ *(Public Key Algorithm|NIST CURVE): *(.*)$/\2/p' | paste -sd ' ' -)
NOTES+=("TLS: nginx and the gateway use the server certificate and key that \`gateway init\`
made (${SERVER_KEY:-key type unknown}, signed by the gateway CA), TLS 1.2 and 1.3 allowed,
each with its default ciphers and session tickets. As openssl s_client saw them: nginx
$NGINX_TLS_PARAMS; gateway $GATEWAY_TLS_PARAMS.")
NOTES+=("Client certificate: an EC P-256 key and CSR made with \`openssl req\`, signed by the
gateway through \`POST /api/v3/networks/certificates\` (network made with \`gateway network
create --secure\`, admin token from \`gateway admin token\`); \$WORK/client/client.pem is the
certificate then the key (\`ab -E\`, wrk_client_cert.so). nginx (mTLS listener):
\`ssl_verify_client on\`, \`ssl_client_certificate\` the gateway CA. The gateway asks every
client for a certificate and verifies one presented against its CA. Checked before
measuring: nginx answers 400 without a certificate and to a self-signed one; the gateway
fails the handshake with the self-signed one, and passes the fingerprint of ours to the
upstream (X-Gateway-Client-Cert-Sha256).")
NOTES+=("Tools: wrk 4.1 cannot present a client certificate by itself: in the '(wrk)' mTLS
row bench/wrk_client_cert.so (LD_PRELOAD) loads client.pem into wrk's OpenSSL context,
checked before measuring to reach the upstream's fingerprint echo through the gateway
(bench/expect_body.lua). The '(ab)' mTLS rows use ApacheBench (\`ab -E\`), single-threaded,
HTTP/1.0 (\`-k\`: Connection: keep-alive): the gateway serves HTTP/1.0 through aiohttp, not
its data plane, so its '(ab)' rows measure that path. The '(ab)' TLS rows are the same-tool
twins of the mTLS rows. ab reports latency in whole milliseconds; its \`errors\` are its
failed requests (connect, receive, length, exceptions) and write errors.
New connection per request: wrk (\`-H 'Connection: close'\`) keeps the TLS session of the
previous connection and offers it, so with a server that resumes sessions (above) each
connection is a resumed TLS 1.3 handshake (PSK with an ECDHE key exchange, no certificate
sent or verified); ab offers none: a full handshake every time, with the client
certificate verified in the mTLS row.")
NOTES+=("Pinning: the server under test (nginx, 1 worker; or the gateway, 1 worker, access log
to a file) alone on CPU $PROXY_CPU, the other one idle there; the load tool and the upstream
nginx (1 worker, plain HTTP, keep-alive from both proxies) share CPU $LOAD_CPU. Each
gateway row is measured right after its nginx row. Load runs are bounded by \`timeout\`.")
VERSIONS="$(nginx -v 2>&1 | sed 's/^nginx version: //')"
VERSIONS+=" ($(nginx -V 2>&1 | sed -nE '/.*running with (OpenSSL [^ ]+).*/ { s//\1/p; q; }
    /^built with (OpenSSL [^ ]+).*/ { s//\1/p; q; }'))"
VERSIONS+=", $({ wrk -v 2>&1 || true; } | awk 'NR == 1 { print $1, $2 }')"
VERSIONS+=", ab $(ab -V | awk 'NR == 1 { print $5 }')"
VERSIONS+=" (apache2-utils $(dpkg-query -W -f '${Version}' apache2-utils 2>/dev/null || echo '?'))"
VERSIONS+=", $(openssl version | awk '{ print $1, $2 }') (ab, wrk, curl)"
VERSIONS+=", $("$PYTHON" -c 'import platform, ssl, aiohttp
print("Python", platform.python_version(), "with", " ".join(ssl.OPENSSL_VERSION.split()[:2]), "aiohttp", aiohttp.__version__)')"
note_versions "$VERSIONS"

write_table tls-latest.md "BENCH_AB_TLS=$AB_TLS BENCH_AB_MAX_RATE=$AB_MAX_RATE BENCH_BUILD=$BUILD" \
    --title "Gateway TLS benchmark" --ratio-header "ratio to the nginx row req/s"
