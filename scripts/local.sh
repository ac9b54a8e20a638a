#!/usr/bin/env bash
# The local path after `make demo`: a command (or, without one, a shell) in the demo's project,
# .state/demo/project, with the toolchain on PATH, the local services' DATABASE_URL and INFISICAL_*, and
# the demo's env file (its `{from: env}` values). The demo's project links the repository's code and
# tenants.yaml and keeps its own stack file, so nothing here edits a tracked file:
#
#   scripts/local.sh tenantctl plan --stack dev     (make plan)
#   scripts/local.sh tenantctl validate tenants.yaml --stack dev     (make validate)
#   scripts/local.sh pulumi config set --secret --path 'tenant-secrets:secrets.<tenant>.<KEY>' <value>
#   scripts/local.sh                                (make shell: an interactive shell there)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
project=$root/.state/demo/project
if [ ! -f "$project/Pulumi.dev.yaml" ]; then
  echo "local.sh: no demo project in .state/demo/project: run \`make demo\` first (about a minute on a fresh clone)" >&2
  exit 1
fi
source "$root/scripts/env.sh"
python -m dev.services up >/dev/null
eval "$(python -m dev.services env)"
source "$root/.state/demo/env"
cd "$project"
pulumi login --non-interactive "$PULUMI_BACKEND_URL" >/dev/null
if [ $# -eq 0 ]; then
  echo "local.sh: a shell in .state/demo/project (stack dev, local services); exit to leave" >&2
  exec "${SHELL:-bash}" -i
fi
exec "$@"
