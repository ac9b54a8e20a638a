# Sourced by the Makefile's recipes and scripts: the project's toolchain and state locations.
# Anything already set (a team's PULUMI_BACKEND_URL, a passphrase from CI) wins.
_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$_root/.state/toolchain/bin:$_root/.venv/bin:$PATH"
export PULUMI_HOME="${PULUMI_HOME:-$_root/.state/pulumi-home}"
export PULUMI_SKIP_UPDATE_CHECK=true
# the program and the provider plugin import components and tenant_secrets from here
export PYTHONPATH="$_root${PYTHONPATH:+:$PYTHONPATH}"
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$_root/.state/backend}"
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  # the local default: a passphrase made on first use, never committed (.state is gitignored)
  mkdir -p "$_root/.state"
  [ -s "$_root/.state/passphrase" ] || (umask 077; head -c 32 /dev/urandom | base64 > "$_root/.state/passphrase")
  export PULUMI_CONFIG_PASSPHRASE_FILE="$_root/.state/passphrase"
fi
mkdir -p "$_root/.state/backend"
unset _root
