#!/bin/sh
# Installs the gateway from its wheel into a virtualenv of its own. The image's runtime
# stage runs this (Dockerfile), and so does CI, outside Docker, into a temporary prefix
# (.ci/package_check.py): the image's install steps are tested on every CI run.
#
#   sh docker/install.sh dist/gateway-*.whl            # as root: /opt/gateway, user 10001
#   GATEWAY_PREFIX=/tmp/gw GATEWAY_USER= GATEWAY_CONFIG_DIR=/tmp/gw/etc \
#     GATEWAY_STATE_DIR=/tmp/gw/state sh docker/install.sh dist/gateway-*.whl
#
# Dependencies come from the package index (PIP_* variables apply, PIP_NO_CACHE_DIR=1
# in the image). Nothing is started and no config is written: the entry point's
# `gateway init --config-dir` does that on the first start, into the volumes.
set -eu

wheel=${1:?usage: install.sh WHEEL}
prefix=${GATEWAY_PREFIX:-/opt/gateway}
user=${GATEWAY_USER-gateway}      # empty: no user; the files keep the caller's owner
uid=${GATEWAY_UID:-10001}         # numeric, so orchestrators can check "not root"
config_dir=${GATEWAY_CONFIG_DIR:-/etc/gateway}
state_dir=${GATEWAY_STATE_DIR:-/var/lib/gateway}
here=$(dirname "$0")

python3 -m venv "$prefix"
"$prefix/bin/pip" install --quiet --disable-pip-version-check "$wheel"
install -m 0755 "$here/entrypoint.sh" "$prefix/bin/gateway-entrypoint"

mkdir -p "$config_dir" "$state_dir"
chmod 0700 "$state_dir"           # the CA key, the key-encryption key and the store
if [ -n "$user" ]; then
  if ! id -u "$user" >/dev/null 2>&1; then
    groupadd --system --gid "$uid" "$user"
    useradd --system --uid "$uid" --gid "$uid" --no-create-home --home-dir "$state_dir" \
      --shell /usr/sbin/nologin "$user"
  fi
  chown "$user:$user" "$config_dir" "$state_dir"
fi
"$prefix/bin/gateway" --version
