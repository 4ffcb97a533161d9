# shellcheck shell=bash
# What bench/run.sh and bench/tls.sh share: settings, tools, the processes they start and
# stop, the upstream nginx, the gateway's configuration, the measured runs and the report.
# Sourced by them (after `set -euo pipefail`), not run. The scripts keep their own rows.
#
# Set by the script, read here: UP_PORT (the upstream's port) before write_upstream_conf,
# the nginx and gateway configurations; UP_PID (start_upstream sets it); GATEWAY_PORT
# before write_gateway_conf; LOAD_GRACE (optional): seconds a load run may take beyond
# its duration before `timeout` ends it (unset: load runs are not bounded).

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
RESULTS=$HERE/results

BENCH_PATH=/api/v3/bench
# About 100 bytes of JSON, no quote or `$` inside (it goes into nginx's `return`). Both
# scripts' upstream answers it, and wait_ready waits for it.
BODY='{"status":"ok","service":"bench-upstream","items":[1,2,3,4,5],'
BODY+='"message":"hello from the upstream"}'

# The log prefix, the temporary folder's name and the make target: bench_init sets it.
BENCH_NAME=bench

log() { printf '[%s] %s\n' "$BENCH_NAME" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$BENCH_NAME" "$*" >&2; exit 1; }

# The script's header comment, up to `set -euo pipefail`, is its --help.
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# bench_init NAME SCRIPT-ARG...: NAME (bench, bench-tls) prefixes the log lines and names
# the make target that runs the script. Reads the settings both scripts have; the only
# arguments are -h/--help: settings are environment variables.
bench_init() {
    BENCH_NAME=$1
    shift
    INVOCATION=$(printf '%q ' "$0" "$@")
    INVOCATION=${INVOCATION% }

    DURATION=${BENCH_DURATION:-10}
    WARMUP=${BENCH_WARMUP:-3}
    CONNECTIONS=${BENCH_CONNECTIONS:-64}
    THREADS=${BENCH_THREADS:-1}
    ROUNDS=${BENCH_ROUNDS:-1}
    LOAD_CPU=${BENCH_LOAD_CPU:-0}
    PROXY_CPU=${BENCH_PROXY_CPU:-1}
    VENV=${BENCH_VENV:-$ROOT/.venv}
    case $VENV in /*) ;; *) VENV=$ROOT/$VENV ;; esac

    # nginx and haproxy live in sbin, which a non-root PATH may lack.
    export PATH=$PATH:/usr/sbin:/sbin

    local arg
    for arg in "$@"; do
        case $arg in
            -h|--help) usage; exit 0 ;;
            *) die "unexpected argument '$arg' (settings are environment variables; see --help)" ;;
        esac
    done
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# check_settings NAME...: the shared settings and the script's own NAMEs (BENCH_ without
# the prefix) must be whole numbers; the shared ones must make sense together.
check_settings() {
    local name
    for name in DURATION WARMUP CONNECTIONS THREADS ROUNDS LOAD_CPU PROXY_CPU "$@"; do
        is_uint "${!name}" || die "BENCH_$name must be a non-negative integer, got '${!name}'"
    done
    ((DURATION > 0 && CONNECTIONS > 0 && THREADS > 0 && ROUNDS > 0)) \
        || die "BENCH_DURATION, BENCH_CONNECTIONS, BENCH_THREADS and BENCH_ROUNDS must be positive"
}

# find_venv: the gateway and Python of the project's virtualenv, which the script does not
# make (its make target does).
find_venv() {
    GATEWAY=$VENV/bin/gateway
    PYTHON=$VENV/bin/python
    [[ -x $GATEWAY && -x $PYTHON ]] \
        || die "$GATEWAY not found: create the virtualenv first (make .venv/.installed, or make" \
            "$BENCH_NAME)"
}

# --- tools ---------------------------------------------------------------------------
# install_missing SECONDS COMMAND:PACKAGE...: apt-get the packages of the commands not on
# PATH, as root only. SECONDS bounds each apt-get with `timeout` (0: unbounded).
install_missing() {
    local seconds=$1 spec
    shift
    local -a packages=() limit=()
    for spec in "$@"; do
        command -v "${spec%%:*}" >/dev/null || packages+=("${spec#*:}")
    done
    ((${#packages[@]})) || return 0
    ((EUID == 0)) || die "missing ${packages[*]}: install them, or run as root to apt-get them"
    command -v apt-get >/dev/null || die "missing ${packages[*]} and no apt-get to install them"
    log "installing ${packages[*]}"
    ((seconds == 0)) || limit=(timeout "$seconds")
    # Keep the packages' init scripts from starting system-wide daemons (port 80 etc.).
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
    fi
    local status=0
    {
        "${limit[@]}" apt-get update -q \
            && DEBIAN_FRONTEND=noninteractive "${limit[@]}" apt-get install -y -q "${packages[@]}"
    } >&2 || status=$?
    ((made_policy)) && rm -f "$policy"
    ((status == 0)) || die "apt-get install ${packages[*]} failed"
}

# check_cpus: the cores of the settings exist; sharing one skews the figures.
check_cpus() {
    local cpus
    cpus=$(nproc)
    ((LOAD_CPU < cpus && PROXY_CPU < cpus)) \
        || die "BENCH_LOAD_CPU/BENCH_PROXY_CPU must be below the $cpus CPUs available"
    ((LOAD_CPU != PROXY_CPU)) || log "warning: load and proxy share core $LOAD_CPU"
}

# --- processes -----------------------------------------------------------------------
# make_work: the temporary folder (configurations, load outputs, the manifest of measured
# runs) and the traps that stop every process started here and remove it, on any exit.
make_work() {
    WORK=$(mktemp -d "/tmp/gateway-$BENCH_NAME.XXXXXX")
    PIDS=()
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    mkdir -p "$RESULTS"
    MANIFEST=$WORK/manifest.jsonl
    : >"$MANIFEST"
    NOTES=()
    APPENDICES=()
}

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

# start CPU LOGFILE COMMAND... : run pinned in the background; the pid is in $STARTED.
start() {
    local cpu=$1 logfile=$2
    shift 2
    taskset -c "$cpu" "$@" >"$logfile" 2>&1 &
    STARTED=$!
    PIDS+=("$STARTED")
}

# use_build: the gateway rows run the build BENCH_BUILD names: `compiled` (the default, as
# the image ships it: bench/compiled_tree.sh in $WORK, first on PYTHONPATH) or
# `interpreted` (the plain sources).
use_build() {
    BUILD=${BENCH_BUILD:-compiled}
    case $BUILD in
        compiled)
            log "compiling the data plane into $WORK/compiled (bench/compiled_tree.sh, about a minute)"
            bash "$HERE/compiled_tree.sh" "$WORK/compiled" "$PYTHON" >/dev/null \
                || die "the compiled build failed"
            export PYTHONPATH=$WORK/compiled ;;
        interpreted) unset PYTHONPATH ;;
        *) die "BENCH_BUILD must be compiled or interpreted, got '$BUILD'" ;;
    esac
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
# body (the curl arguments, e.g. `-H 'Authorization: ...'` or `--cacert`, go with every
# try).
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

# snapshot CPU SERVER-PID FILE: CPU counters around a measured run (taken from the load core).
snapshot() {
    taskset -c "$1" "$PYTHON" "$HERE/report.py" snapshot \
        --pid "server=$2" --pid "upstream=$UP_PID" --out "$3"
}

# unset_gateway_env: the gateway reads GATEWAY_<SECTION>_<KEY> overrides: none from the
# caller's shell.
unset_gateway_env() {
    local name
    while IFS= read -r name; do
        unset "$name"
    done < <(compgen -e | grep '^GATEWAY_' || true)
}

# --- configurations ------------------------------------------------------------------
# write_nginx_conf DIR HTTP-BODY: one worker, no access log, long keep-alive; the servers
# (and upstream blocks) in HTTP-BODY.
write_nginx_conf() {
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
$2
}
EOF
}

# write_upstream_conf [LOCATION...]: the upstream nginx in $WORK/upstream, on UP_PORT,
# answering BODY on every path but the script's own LOCATIONs.
write_upstream_conf() {
    local extra=""
    (($#)) && extra=$(printf '\n        %s' "$@")
    write_nginx_conf "$WORK/upstream" "    server {
        listen 127.0.0.1:$UP_PORT backlog=4096;
        location / {
            default_type application/json;
            return 200 '$BODY';
        }$extra
    }"
}

# start_upstream: the upstream nginx on the load core, ready; its pid in UP_PID.
start_upstream() {
    start "$LOAD_CPU" "$WORK/upstream/stdout.log" \
        nginx -p "$WORK/upstream/" -c "$WORK/upstream/nginx.conf" -e "$WORK/upstream/error.log"
    UP_PID=$STARTED
    wait_ready "upstream nginx" "$UP_PID" "$WORK/upstream/error.log" \
        "http://127.0.0.1:$UP_PORT$BENCH_PATH"
}

# nginx_upstream: the `upstream` block of every nginx proxy (kept-alive connections to the
# upstream), and nginx_proxy_location the location that proxies to it: one text, so that
# the nginx rows of both scripts proxy alike.
nginx_upstream() {
    cat <<EOF
    upstream bench_upstream {
        server 127.0.0.1:$UP_PORT;
        keepalive 128;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
EOF
}
nginx_proxy_location() {
    cat <<'EOF'
location / {
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
EOF
}

# write_gateway_conf FILE HTTP HTTPS ACCESS-LOG POLICY...: one worker (GW_WORKERS=N before
# the call: N), the listeners as given (YAML, `null` for none), the upstream nginx as the
# only region's upstream. Every configuration of a script shares the folder (store, signing
# keys, certificates).
write_gateway_conf() {
    local file=$1 http=$2 https=$3 access_log=$4 policies
    shift 4
    policies=$(printf 'policies/%s, ' "$@")
    mkdir -p "$(dirname "$file")"
    cat >"$file" <<EOF
server:
  http: $http
  https: $https
  workers: ${GW_WORKERS:-1}
  access_log: $access_log
store:
  url: sqlite:///var/gateway.db
regions:
  default: local
  local: {hosts: [localhost], upstreams: ["http://127.0.0.1:$UP_PORT"]}
policies: [${policies%, }]
EOF
}

# write_policy FILE [RULE-LINE...]: a policy file with the script's rules first, then the
# rule every row that needs no token uses: anything is public.
write_policy() {
    local file=$1
    shift
    mkdir -p "$(dirname "$file")"
    {
        printf 'rules:\n'
        # Built-in endpoints are decided only by rules written for their own paths.
        printf '%s\n' '  - {name: healthz, match: {path: /healthz, methods: [GET]}, auth: public}' \
            '  - {name: jwks, match: {path: /.well-known/jwks.json, methods: [GET]}, auth: public}'
        (($# == 0)) || printf '%s\n' "$@"
        printf '%s\n' '  - name: bench-public' '    match: {path: "/**"}' '    auth: public'
    } >"$file"
}

# --- TLS -----------------------------------------------------------------------------
# The upstream answers this path with the X-Gateway-Client-Cert-Sha256 header it got:
# write_upstream_conf "${CERT_ECHO_LOCATION[@]}".
CERT_ECHO_PATH=/bench-client-cert
# shellcheck disable=SC2034  # the scripts' write_upstream_conf calls use it
CERT_ECHO_LOCATION=("location = $CERT_ECHO_PATH {" "    default_type text/plain;"
    "    return 200 '\$http_x_gateway_client_cert_sha256';" "}")

# json_field NAME: the field NAME of the JSON object on stdin.
json_field() { "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# http_status URL [CURL-ARG...]: the status code, or `none` when no answer came (e.g. the
# TLS handshake failed).
http_status() {
    local url=$1 code
    shift
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "$@" "$url" 2>/dev/null) \
        || code=none
    [[ $code == 000 ]] && code=none
    printf '%s' "$code"
}

# gateway_https PORT: the gateway's HTTPS listener on PORT (YAML for write_gateway_conf),
# with the server certificate and key that `gateway init` makes.
gateway_https() {
    printf '{host: 127.0.0.1, port: %s, cert: certs/server.pem, key: certs/server.key}' "$1"
}

# write_nginx_tls_conf DIR TLS-PORT MTLS-PORT CERTS: nginx terminating TLS with the gateway's
# server certificate (CERTS/server.pem and .key), proxying to the upstream as the nginx
# proxy row does; the listener on MTLS-PORT requires a client certificate that chains to
# the gateway CA (CERTS/ca.pem). TLS 1.2+ like the gateway (nginx 1.22's default has no 1.3).
write_nginx_tls_conf() {
    local dir=$1 tls_port=$2 mtls_port=$3 certs=$4 location
    location=$(nginx_proxy_location)
    write_nginx_conf "$dir" "$(nginx_upstream)
    ssl_certificate $certs/server.pem;
    ssl_certificate_key $certs/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    server {
        listen 127.0.0.1:$tls_port ssl backlog=4096;
        $location
    }
    server {
        listen 127.0.0.1:$mtls_port ssl backlog=4096;
        ssl_verify_client on;
        ssl_client_certificate $certs/ca.pem;
        $location
    }"
}

# make_client_certs DIR CONFIG PORT NAME: the gateway's CA and server certificate (`gateway
# init` with CONFIG, a configuration in DIR), then a client certificate signed the way an
# operator gets one: a network NAME made with `gateway network create --secure`, an admin
# and their admin token, an EC P-256 key and CSR from `openssl req`, the CSR POSTed to
# /api/v3/networks/certificates of a gateway started for it alone with DIR/config-sign.yaml
# (HTTPS on PORT). Needs the upstream running and DIR/policies/bench.yaml (write_policy).
# Sets CERTS, CA, CLIENT_PEM ($WORK/client/client.pem: the certificate, then its key),
# STRANGER_PEM (a self-signed certificate and key: no chain to the CA), FINGERPRINT
# (SHA-256 of the client certificate, as the gateway reports it) and TLS_ADMIN_TOKEN (the
# admin's token). The network then has mTLS on (`gateway network update --mtls on`): rules
# with `mtls: true` want the certificate, pinned, with any of its credentials.
make_client_certs() {
    local dir=$1 config=$2 port=$3 name=$4 client=$WORK/client network admin_token pid code
    CERTS=$dir/certs
    CA=$CERTS/ca.pem
    CLIENT_PEM=$client/client.pem
    STRANGER_PEM=$client/stranger.pem
    log "gateway init, network, admin and admin token in $dir"
    "$GATEWAY" init --config "$config" >"$dir/init.json" || die "gateway init failed"
    [[ -s $CA && -s $CERTS/server.pem && -s $CERTS/server.key ]] \
        || die "gateway init made no CA or server certificate in $CERTS"
    network=$("$GATEWAY" network create --config "$config" --name "$name" --secure \
        | json_field networkId) || die "gateway network create failed"
    "$GATEWAY" admin create --config "$config" --network "$network" \
        --username bench --role admin --password-stdin <<<"bench-$RANDOM$RANDOM$RANDOM" \
        >/dev/null || die "gateway admin create failed"
    admin_token=$("$GATEWAY" admin token --config "$config" --network "$network" \
        --username bench | json_field adminToken) || die "gateway admin token failed"

    mkdir -p "$client"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$client/client.key" -subj /CN=bench-tls-client \
        -out "$client/client.csr" 2>"$client/openssl.log" \
        || { cat "$client/openssl.log" >&2; die "openssl req (CSR) failed"; }
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -keyout "$client/stranger.key" -subj /CN=bench-tls-stranger \
        -out "$client/stranger.crt" 2>"$client/openssl.log" \
        || { cat "$client/openssl.log" >&2; die "openssl req (self-signed) failed"; }
    cat "$client/stranger.crt" "$client/stranger.key" >"$STRANGER_PEM"
    "$PYTHON" -c 'import json, sys; print(json.dumps({"name": "bench-tls", "csr": open(sys.argv[1]).read()}))' \
        "$client/client.csr" >"$client/request.json"

    # Only to have the CSR signed: the certificates endpoint for admins, before the rules
    # of the measured rows.
    write_gateway_conf "$dir/config-sign.yaml" null "$(gateway_https "$port")" true \
        sign.yaml bench.yaml
    cat >"$dir/policies/sign.yaml" <<'YAML'
rules:
  - name: certificates
    match: {path: /api/v3/networks/certificates, methods: [POST]}
    auth: admin_token
    roles: [admin]
    mtls: true
YAML
    start "$PROXY_CPU" "$WORK/gateway-sign.log" "$GATEWAY" serve --config "$dir/config-sign.yaml"
    pid=$STARTED
    wait_ready "gateway (signing)" "$pid" "$WORK/gateway-sign.log" \
        "https://127.0.0.1:$port$BENCH_PATH" --cacert "$CA"
    log "POST the CSR to /api/v3/networks/certificates"
    code=$(curl -sS --max-time 10 --cacert "$CA" -o "$client/certificate.json" \
        -w '%{http_code}' -H "Authorization: Bearer $admin_token" \
        -H 'Content-Type: application/json' --data-binary "@$client/request.json" \
        "https://127.0.0.1:$port/api/v3/networks/certificates") || code=none
    [[ $code == 201 ]] \
        || { cat "$client/certificate.json" >&2 || true; die "the CSR got $code, not 201"; }
    json_field certificate <"$client/certificate.json" >"$client/client.crt"
    FINGERPRINT=$(json_field fingerprintSha256 <"$client/certificate.json")
    stop "$pid"
    cat "$client/client.crt" "$client/client.key" >"$CLIENT_PEM"
    openssl verify -CAfile "$CA" -purpose sslclient "$client/client.crt" >/dev/null \
        || die "the certificate the gateway signed does not verify against its CA for clients"
    [[ $(openssl x509 -in "$client/client.crt" -noout -fingerprint -sha256 \
        | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f') == "$FINGERPRINT" ]] \
        || die "fingerprintSha256 of the answer is not the certificate's"
    "$GATEWAY" network update --config "$config" --network "$network" --mtls on >/dev/null \
        || die "gateway network update --mtls on failed"
    TLS_ADMIN_TOKEN=$admin_token
}

# check_pinned URL: the pinned route (mtls: true, any token) must want both the token and
# the certificate, or the pinned row measures nothing more than the mTLS one.
check_pinned() {
    local url=$1 code
    code=$(http_status "$url" --cacert "$CA" -H "Authorization: Bearer $TLS_ADMIN_TOKEN")
    [[ $code == 401 ]] || die "the pinned route answered $code without a client certificate"
    code=$(http_status "$url" --cacert "$CA" --cert "$CLIENT_PEM")
    [[ $code == 401 ]] || die "the pinned route answered $code without a token"
    code=$(http_status "$url" --cacert "$CA" --cert "$CLIENT_PEM" \
        -H "Authorization: Bearer $TLS_ADMIN_TOKEN")
    [[ $code == 200 ]] || die "the pinned route answered $code with the token and certificate"
    log "checked: the pinned route wants the token and the pinned certificate"
}

# check_client_certs NGINX-MTLS-PORT GATEWAY-PORT: both must check the client certificate,
# or the mTLS rows measure nothing more: nginx's mTLS listener refuses no certificate and a
# self-signed one (400); the gateway fails the handshake with the self-signed one, passes
# the fingerprint of ours upstream (the upstream echoes it on CERT_ECHO_PATH), and serves a
# client without one. Both servers must be up, with make_client_certs's certificates.
check_client_certs() {
    local nginx_url="https://127.0.0.1:$1$BENCH_PATH" gateway=https://127.0.0.1:$2 code seen
    code=$(http_status "$nginx_url" --cacert "$CA")
    [[ $code == 400 ]] || die "nginx (mTLS) answered $code, not 400, without a client certificate"
    code=$(http_status "$nginx_url" --cacert "$CA" --cert "$STRANGER_PEM")
    [[ $code == 400 ]] || die "nginx (mTLS) answered $code, not 400, to a self-signed certificate"
    code=$(http_status "$gateway$BENCH_PATH" --cacert "$CA" --cert "$STRANGER_PEM")
    [[ $code == none ]] \
        || die "the gateway answered $code to a self-signed client certificate (handshake expected to fail)"
    seen=$(curl -fsS --max-time 5 --cacert "$CA" --cert "$CLIENT_PEM" \
        "$gateway$CERT_ECHO_PATH") || seen=none
    [[ $seen == "$FINGERPRINT" ]] \
        || die "the upstream got X-Gateway-Client-Cert-Sha256 '$seen', not '$FINGERPRINT'"
    code=$(http_status "$gateway$BENCH_PATH" --cacert "$CA")
    [[ $code == 200 ]] || die "the gateway answered $code without a client certificate"
    log "checked: nginx refuses no or a foreign client certificate; the gateway fails the handshake"
    log "on a foreign one and passes the fingerprint of ours upstream"
}

# build_wrk_client_cert: bench/wrk_client_cert.c, the LD_PRELOAD library that makes wrk
# present a client certificate, compiled into $WORK (WRK_CLIENT_CERT_SO); wrk must load
# OpenSSL dynamically for it to work.
build_wrk_client_cert() {
    local libraries
    libraries=$(ldd "$(command -v wrk)" 2>/dev/null) || libraries=""
    [[ $libraries == *libssl.so* ]] || die "this wrk is not linked to a shared libssl:" \
        "bench/wrk_client_cert.c cannot give it a client certificate"
    WRK_CLIENT_CERT_SO=$WORK/wrk_client_cert.so
    cc -O2 -Wall -Wextra -shared -fPIC -o "$WRK_CLIENT_CERT_SO" "$HERE/wrk_client_cert.c" -ldl \
        || die "cc could not build $HERE/wrk_client_cert.c"
}

# wrk_client_cert PEM: LOAD_ENV for wrk presenting the certificate and key in PEM (empty
# PEM: none).
wrk_client_cert() {
    LOAD_ENV=()
    [[ -z $1 ]] || LOAD_ENV=("LD_PRELOAD=$WRK_CLIENT_CERT_SO" "WRK_CLIENT_CERT=$1")
}

# check_wrk_client_cert GATEWAY-PORT: a 1 s wrk run with our certificate against the
# gateway's CERT_ECHO_PATH: every answer must be 200 with the certificate's fingerprint,
# which the gateway passes upstream only for a certificate presented in the handshake.
check_wrk_client_cert() {
    local out=$WORK/wrk-client-cert-check.txt line
    wrk_client_cert "$CLIENT_PEM"
    load_limit 1 wrk
    taskset -c "$LOAD_CPU" "${LOAD_COMMAND[@]}" -t1 -c2 -d1s -s "$HERE/expect_body.lua" \
        "https://127.0.0.1:$1$CERT_ECHO_PATH" -- "$FINGERPRINT" >"$out" 2>&1 \
        || { cat "$out" >&2; die "wrk with a client certificate failed"; }
    LOAD_ENV=()
    line=$(grep -E '^Body: [0-9]+ of [0-9]+ unexpected$' "$out") \
        || { cat "$out" >&2; die "no 'Body:' line from bench/expect_body.lua"; }
    [[ $line =~ ^Body:\ 0\ of\ [1-9] ]] || {
        cat "$out" >&2
        die "wrk did not present the client certificate to the gateway ($line)"
    }
    log "checked: wrk with bench/wrk_client_cert.so presents the certificate (${line#Body: })"
}

# --- measuring -----------------------------------------------------------------------
# What the measured runs print to stderr, by load tool (a script adds its own tools).
declare -A LOAD_SUMMARY=([wrk]='Requests/sec|Non-2xx|Socket errors|^Tokens:')

# Environment of the load tool (NAME=VALUE words, e.g. LD_PRELOAD for wrk with a client
# certificate): set by a script around the rows that need it, empty otherwise.
LOAD_ENV=()

# load_limit SECONDS TOOL: the command of a load run of SECONDS in LOAD_COMMAND, bounded by
# `timeout` when the script set LOAD_GRACE, run with `env` when LOAD_ENV is set.
load_limit() {
    LOAD_COMMAND=("$2")
    ((${#LOAD_ENV[@]} == 0)) || LOAD_COMMAND=(env "${LOAD_ENV[@]}" "$2")
    [[ -z ${LOAD_GRACE:-} ]] \
        || LOAD_COMMAND=(timeout -k 5 "$(($1 + LOAD_GRACE))" "${LOAD_COMMAND[@]}")
}

# run_load CPU OUT SECONDS TOOL ARG...: the load tool in the background, waited for, so
# that Ctrl-C (which wrk catches, leaving bash's INT trap unrun were wrk in the
# foreground) stops the script.
run_load() {
    local cpu=$1 out=$2 seconds=$3 tool=$4 pid status=0
    shift 4
    load_limit "$seconds" "$tool"
    taskset -c "$cpu" "${LOAD_COMMAND[@]}" "$@" >"$out" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || status=$?
    forget "$pid"
    if [[ -n ${LOAD_GRACE:-} ]] && ((status == 124 || status == 137)); then
        cat "$out" >&2
        die "$tool did not finish within $((seconds + LOAD_GRACE)) s"
    fi
    ((status == 0)) || { cat "$out" >&2; die "$tool failed (status $status)"; }
}

# load_args TOOL SECONDS LATENCY: the tool's options for a run of SECONDS (before the
# target's own options) in LOAD_ARGS; LATENCY=1 asks wrk for percentiles. Another TOOL
# is the script's: its function load_args_TOOL SECONDS sets them.
load_args() {
    case $1 in
        wrk)
            LOAD_ARGS=("-t$THREADS" "-c$CONNECTIONS" "-d${2}s")
            if (($3)); then LOAD_ARGS+=(--latency); fi
            ;;
        *)
            declare -F "load_args_$1" >/dev/null || die "unknown load tool $1"
            "load_args_$1" "$2"
            ;;
    esac
}

# shown_command CPU SECONDS TOOL ARG...: the command as the results show it: arguments
# with a space quoted, the temporary folder as $WORK, bench/ for this folder, the token
# of the one-token rows (WARM_TOKEN, bench/run.sh) as $TOKEN.
shown_command() {
    local cpu=$1 seconds=$2 tool=$3 arg text work="\$WORK" token="\$TOKEN"
    shift 3
    load_limit "$seconds" "$tool"
    text="taskset -c $cpu ${LOAD_COMMAND[*]}"
    for arg in "$@"; do
        [[ $arg == *' '* ]] && arg="'$arg'"
        text+=" $arg"
    done
    text=${text//"$WORK"/"$work"}
    text=${text//"$HERE"/bench}
    [[ -z ${WARM_TOKEN:-} ]] || text=${text//"$WARM_TOKEN"/"$token"}
    printf '%s' "$text"
}

# measure SLUG LABEL TOOL BASELINE LOAD-CPU SERVER-PID SERVER-CPU TARGET-ARG...: a warm-up,
# then BENCH_ROUNDS measured runs of TOOL (wrk, or the script's), each recorded in the
# manifest with the CPU use around it. BASELINE: the slug of the row the ratio divides by
# (empty: report.py's default). The target's arguments come last: its options (-H, -s),
# the URL, and for a wrk script after `--` the script's arguments. The outputs are
# $WORK/warm-up-SLUG.txt and $WORK/load-SLUG-ROUND.txt.
measure() {
    local slug=$1 label=$2 tool=$3 baseline=$4 cpu=$5 server=$6 server_cpu=$7 round out
    shift 7
    local -a target=("$@") args
    if ((WARMUP > 0)); then
        log "$label: warm-up ${WARMUP}s"
        load_args "$tool" "$WARMUP" 0
        run_load "$cpu" "$WORK/warm-up-$slug.txt" "$WARMUP" "$tool" \
            "${LOAD_ARGS[@]}" "${target[@]}"
    fi
    load_args "$tool" "$DURATION" 1
    args=("${LOAD_ARGS[@]}" "${target[@]}")
    for ((round = 1; round <= ROUNDS; round++)); do
        out=$WORK/load-$slug-$round.txt
        log "$label: measuring ${DURATION}s (run $round of $ROUNDS)"
        snapshot "$cpu" "$server" "$out.before.json"
        # The shell's children's CPU times before and after: the difference is the tool's.
        times >"$out.times-before"
        run_load "$cpu" "$out" "$DURATION" "$tool" "${args[@]}"
        times >"$out.times-after"
        snapshot "$cpu" "$server" "$out.after.json"
        grep -E "${LOAD_SUMMARY[$tool]}" "$out" | sed 's/^ */    /' >&2 || true
        "$PYTHON" "$HERE/report.py" record --manifest "$MANIFEST" --slug "$slug" \
            --label "$label" --tool "$tool" --baseline "$baseline" \
            --load-command "$(shown_command "$cpu" "$DURATION" "$tool" "${args[@]}")" \
            --load-output "$out" --load-times "$out.times-before" "$out.times-after" \
            --server-core "$server_cpu" --wrk-core "$cpu" --upstream-core "$LOAD_CPU" \
            --before "$out.before.json" --after "$out.after.json"
    done
}

# note_busy: other work on the machine skews every row: say so in the results.
note_busy() {
    local busy busy_max
    busy=$("$PYTHON" "$HERE/report.py" cpu-busy 1)
    busy_max=$(tail -n1 <<<"$busy")
    log "CPU busy before the run: $(head -n1 <<<"$busy")"
    if ((busy_max >= 10)); then
        log "warning: the machine is not idle; the figures will be lower and noisier"
        NOTES+=("The machine was not idle when the run started ($(head -n1 <<<"$busy") busy over
1 s): the figures are lower and noisier than on a quiet machine.")
    fi
}

# note_versions TOOLS: the versions note, the gateway's revision (and whether its code has
# uncommitted changes) before the TOOLS text.
note_versions() {
    local versions=$1 revision
    if revision=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
        git -C "$ROOT" diff --quiet HEAD -- gateway 2>/dev/null \
            || revision+=" + uncommitted changes"
        versions="gateway $revision (${BUILD:-interpreted}), $versions"
    fi
    NOTES+=("Versions: $versions.")
}

# write_table FILE SETTINGS [TABLE-OPTION...]: the table on stdout and in
# bench/results/FILE, with the notes and appendices, the command as invoked and the one
# that reproduces the run: every shared setting, then the script's own SETTINGS.
write_table() {
    local file=$1 settings=$2 reproduce note
    shift 2
    reproduce="BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_CONNECTIONS=$CONNECTIONS"
    reproduce+=" BENCH_THREADS=$THREADS BENCH_ROUNDS=$ROUNDS BENCH_LOAD_CPU=$LOAD_CPU"
    reproduce+=" BENCH_PROXY_CPU=$PROXY_CPU $settings bash bench/$(basename "$0")"
    local -a note_args=()
    for note in "${NOTES[@]}"; do
        note_args+=(--note "$note")
    done
    echo
    "$PYTHON" "$HERE/report.py" table --manifest "$MANIFEST" --out "$RESULTS/$file" "$@" \
        --command "$INVOCATION" --reproduce "$reproduce" "${note_args[@]}" "${APPENDICES[@]}"
    log "written to $RESULTS/$file"
}
