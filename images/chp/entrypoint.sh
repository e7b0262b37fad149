#!/bin/sh
# Entrypoint of the chp image: take the API token from CONFIGPROXY_AUTH_TOKEN or from
# the file named by CONFIGPROXY_AUTH_TOKEN_FILE (e.g. a mounted secret), then exec
# configurable-http-proxy with the container's arguments.
set -eu

if [ -n "${CONFIGPROXY_AUTH_TOKEN_FILE:-}" ]; then
  if [ -n "${CONFIGPROXY_AUTH_TOKEN:-}" ]; then
    echo "chp-entrypoint: set CONFIGPROXY_AUTH_TOKEN or CONFIGPROXY_AUTH_TOKEN_FILE, not both" >&2
    exit 64
  fi
  if [ ! -r "$CONFIGPROXY_AUTH_TOKEN_FILE" ]; then
    echo "chp-entrypoint: cannot read CONFIGPROXY_AUTH_TOKEN_FILE=$CONFIGPROXY_AUTH_TOKEN_FILE (mount it readable by uid $(id -u))" >&2
    exit 66
  fi
  # Strip a trailing newline, as secrets files often have one.
  CONFIGPROXY_AUTH_TOKEN="$(tr -d '\r\n' < "$CONFIGPROXY_AUTH_TOKEN_FILE")"
  unset CONFIGPROXY_AUTH_TOKEN_FILE
fi

if [ -z "${CONFIGPROXY_AUTH_TOKEN:-}" ]; then
  echo "chp-entrypoint: no API token: set CONFIGPROXY_AUTH_TOKEN or CONFIGPROXY_AUTH_TOKEN_FILE (the hub's proxy auth token)" >&2
  exit 64
fi
export CONFIGPROXY_AUTH_TOKEN

exec configurable-http-proxy "$@"
