#!/usr/bin/env bash
# Makes a fresh Debian machine ready to run and test RedFleet: installs etcd, redis-server and
# chromium when they are missing (as root, with apt-get), installs npm packages, builds.
# Runs before `npm start` and `npm test`; quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
# The partition test makes its own test hosts with ip netns and veth pairs.
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v ss >/dev/null 2>&1 || missing+=(iproute2)
# Only the failover benchmark uses it (it races RedFleet against real Sentinels).
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
# The dashboard's browser test drives Debian's chromium (playwright-core, no browser download).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]} with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq $(printf "%s\n" "${missing[@]}" | sort -u) >/dev/null
  else
    echo "setup: missing ${missing[*]}; install them (Debian: apt-get install -y ${missing[*]}) and run again" >&2
    exit 1
  fi
fi

# npm ci when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi

npm run --silent build
