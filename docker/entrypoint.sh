#!/bin/sh
# The container's entry point (installed as gateway-entrypoint by install.sh): config in
# $GATEWAY_CONFIG_DIR, state in $GATEWAY_STATE_DIR, two volumes. Every start first runs
# `gateway init --config-dir`, which writes the annotated config.yaml and the default
# policy on the first start and makes whatever else is missing (CA, server certificate,
# key-encryption key, schema), never overwriting anything; then `gateway ARGS`
# (the image's default: serve).
#
#   docker run IMAGE                           # serve
#   docker run IMAGE network create --name acme
set -eu

config_dir=${GATEWAY_CONFIG_DIR:-/etc/gateway}
state_dir=${GATEWAY_STATE_DIR:-/var/lib/gateway}
bin=$(dirname "$0")

# Where state lives and where to listen, unless the environment says otherwise. These
# are the config's environment overrides (docs/API.md, section 5): they win over
# config.yaml, so unset them here to let the file decide.
http="{host: 0.0.0.0, port: 8080}"
https="{host: 0.0.0.0, port: 8443, cert: $state_dir/certs/server.pem, key: $state_dir/certs/server.key}"
: "${GATEWAY_SERVER_HTTP:=$http}"
: "${GATEWAY_SERVER_HTTPS:=$https}"
: "${GATEWAY_STORE_URL:=sqlite:///$state_dir/gateway.db}"
: "${GATEWAY_TOKENS_SIGNING_KEYS:=$state_dir/keys}"
: "${GATEWAY_MTLS_CA_CERT:=$state_dir/certs/ca.pem}"
: "${GATEWAY_MTLS_CA_KEY:=$state_dir/certs/ca.key}"
GATEWAY_CONFIG=$config_dir/config.yaml
export GATEWAY_SERVER_HTTP GATEWAY_SERVER_HTTPS GATEWAY_STORE_URL \
  GATEWAY_TOKENS_SIGNING_KEYS GATEWAY_MTLS_CA_CERT GATEWAY_MTLS_CA_KEY GATEWAY_CONFIG

"$bin/gateway" init --config-dir "$config_dir" --log-level warning >/dev/null
exec "$bin/gateway" "$@"
