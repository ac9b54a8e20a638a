#!/usr/bin/env bash
# make setup: everything the demo and the tests need, idempotent, nothing by hand.
#   1. PostgreSQL server binaries (Debian's package) when none are present
#   2. the Python virtualenv .venv from requirements.lock; the Node.js test packages, the Node reader
#      package and its Hono example (npm ci from their lockfiles; the last two compiled with tsc)
#   3. the Pulumi toolchain, and actionlint and act for the workflows, built from the Go module proxy into
#      a per-user cache keyed by version, and linked into .state/toolchain/bin (see
#      docs/decisions/0001-toolchain.md)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
log() { printf 'setup: %s\n' "$*" >&2; }

# --- 1. PostgreSQL --------------------------------------------------------------------------------
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && ! command -v postgres >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    log "PostgreSQL server binaries are missing; install Debian's postgresql package (needs root)"; exit 1
  fi
  log "installing PostgreSQL server binaries (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  # the package starts a system cluster we do not use; ours are private
  (pg_ctlcluster --help >/dev/null 2>&1 && for c in /etc/postgresql/*/main; do
     v=$(basename "$(dirname "$c")"); pg_ctlcluster "$v" main stop 2>/dev/null || true; done) || true
fi

# --- 2. Python ------------------------------------------------------------------------------------
python=${PYTHON:-python3}
lock_hash=$(sha256sum requirements.lock | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.lock-hash 2>/dev/null)" != "$lock_hash" ]; then
  log "creating .venv from requirements.lock"
  "$python" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.lock
  echo "$lock_hash" > .venv/.lock-hash
fi

# The application's side, checked in Node.js: the official Infisical Node SDK for the seed's code.
node_hash=$(sha256sum tests/node/package-lock.json | cut -c1-16)
if [ "$(cat tests/node/node_modules/.lock-hash 2>/dev/null)" != "$node_hash" ]; then
  log "installing the Node.js test packages from tests/node/package-lock.json"
  npm ci --prefer-offline --prefix tests/node --no-audit --no-fund --loglevel=error >/dev/null
  echo "$node_hash" > tests/node/node_modules/.lock-hash
fi

# The Node.js reader package and its Hono example (docs/decisions/0047-node-reader.md): each installed from
# its own lockfile and compiled (tsc) when its sources changed; the example links the package, so it is
# compiled again when the package's sources change too. Their tests run in `make test` (tests/reader/).
node_package() {
  local dir=$1 lock sources; shift
  lock=$(sha256sum "$dir/package-lock.json" | cut -c1-16)
  if [ "$(cat "$dir/node_modules/.lock-hash" 2>/dev/null)" != "$lock" ]; then
    log "installing $dir from its package-lock.json"
    npm ci --prefer-offline --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null
    echo "$lock" > "$dir/node_modules/.lock-hash"
  fi
  sources=$(find "$dir" "$@" \( -name node_modules -o -name dist \) -prune -o -type f \
              \( -name '*.ts' -o -name 'tsconfig.json' -o -name 'package-lock.json' \) -print \
            | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
  if [ "$(cat "$dir/dist/.sources-hash" 2>/dev/null)" != "$sources" ]; then
    log "compiling $dir"
    rm -rf "$dir/dist"
    npm run --prefix "$dir" --silent build
    echo "$sources" > "$dir/dist/.sources-hash"
  fi
}
node_package packages/tenant-secrets-reader
node_package examples/hono-api packages/tenant-secrets-reader/src

# --- 3. Pulumi toolchain --------------------------------------------------------------------------
pulumi_version=$(sed -n 's/^pulumi==//p' requirements.lock)
cache=${TENANT_SECRETS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tenant-secrets}
gosum_hash=$(cat toolchain/go.mod toolchain/go.sum | sha256sum | cut -c1-12)
cli_dir="$cache/pulumi-v$pulumi_version-$gosum_hash"
host_hash=$(cat toolchain/go.sum toolchain/cmd/pulumi-language-python/*.go | sha256sum | cut -c1-12)
host_dir="$cache/language-python-v$pulumi_version-$host_hash"
export GOFLAGS=-mod=readonly

if command -v pulumi >/dev/null && [ "$(pulumi version 2>/dev/null)" = "v$pulumi_version" ] \
   && [ "$(command -v pulumi)" != "$root/.state/toolchain/bin/pulumi" ]; then
  cli="$(command -v pulumi)"
  log "using pulumi v$pulumi_version already on PATH ($cli)"
else
  cli="$cli_dir/pulumi"
  if [ ! -x "$cli" ]; then
    log "building the pulumi CLI v$pulumi_version from the Go module proxy (first time only, a few minutes)"
    mkdir -p "$cli_dir.tmp"
    (cd toolchain && go build -trimpath \
       -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$pulumi_version" \
       -o "$cli_dir.tmp/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
    rm -rf "$cli_dir" && mv "$cli_dir.tmp" "$cli_dir"
  fi
fi

if [ ! -x "$host_dir/pulumi-language-python" ]; then
  log "building the Python language host and collecting the SDK's plugin scripts"
  mkdir -p "$host_dir.tmp"
  (cd toolchain && go build -trimpath -ldflags "-s -w -X main.version=$pulumi_version" \
     -o "$host_dir.tmp/pulumi-language-python" ./cmd/pulumi-language-python)
  sdk=$(cd toolchain && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
  install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$host_dir.tmp/"
  install -m 0755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$host_dir.tmp/"
  rm -rf "$host_dir" && mv "$host_dir.tmp" "$host_dir"
fi

actionlint_version=v1.7.12
actionlint_dir="$cache/actionlint-$actionlint_version"
if [ ! -x "$actionlint_dir/actionlint" ]; then
  log "building actionlint $actionlint_version from the Go module proxy"
  GOFLAGS= GOBIN="$actionlint_dir" go install "github.com/rhysd/actionlint/cmd/actionlint@$actionlint_version"
fi

# nektos/act runs the workflow files themselves in tests/workflows/test_workflows_run.py, jobs on the host
# (docs/decisions/0051-workflows-run-in-a-test.md)
act_version=v0.2.89
act_dir="$cache/act-$act_version"
if [ ! -x "$act_dir/act" ]; then
  log "building act $act_version from the Go module proxy"
  GOFLAGS= GOBIN="$act_dir" go install "github.com/nektos/act@$act_version"
fi

# The engine treats plugins that sit next to the real `pulumi` binary as bundled (no "using ... from
# $PATH" warnings), so the CLI and the plugins are linked together into one folder of the cache.
bundle="$cache/bundle-v$pulumi_version-$gosum_hash-$host_hash"
if [ ! -x "$bundle/pulumi-resource-pulumi-python" ] || ! [ "$bundle/pulumi" -ef "$cli" ]; then
  rm -rf "$bundle.tmp" && mkdir -p "$bundle.tmp"
  for f in "$cli" "$host_dir"/*; do ln -f "$(readlink -f "$f")" "$bundle.tmp/" 2>/dev/null || cp -p "$f" "$bundle.tmp/"; done
  rm -rf "$bundle" && mv "$bundle.tmp" "$bundle"
fi
mkdir -p .state/toolchain/bin
for f in pulumi pulumi-language-python pulumi-language-python-exec pulumi-resource-pulumi-python; do
  ln -sfn "$bundle/$f" ".state/toolchain/bin/$f"
done
ln -sfn "$actionlint_dir/actionlint" .state/toolchain/bin/actionlint
ln -sfn "$act_dir/act" .state/toolchain/bin/act
# the project's own command, run from this checkout
printf '#!/bin/sh\nPYTHONPATH="%s${PYTHONPATH:+:$PYTHONPATH}" exec "%s/.venv/bin/python" -m tenant_secrets.tenantctl "$@"\n' \
  "$root" "$root" > .state/toolchain/bin/tenantctl
chmod +x .state/toolchain/bin/tenantctl
log "ready: $(.state/toolchain/bin/pulumi version), Python $(.venv/bin/python -c 'import platform; print(platform.python_version())')"
