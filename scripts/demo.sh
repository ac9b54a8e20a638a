#!/usr/bin/env bash
# make demo: a real `pulumi up` of tenants.yaml on the dev stack against the local services, then a
# preview that must show no changes. Run it twice: the second run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
python -m dev.services up
eval "$(python -m dev.services env)"

demo=.state/demo
config="$demo/Pulumi.dev.yaml"
mkdir -p "$demo"
[ -f "$config" ] || cp Pulumi.dev.yaml "$config"
pulumi login --non-interactive "$PULUMI_BACKEND_URL" >/dev/null
pulumi stack select --non-interactive --create --secrets-provider passphrase dev >/dev/null
python -m dev.demo --config-file "$config" --env-file "$demo/env"
source "$demo/env"

pulumi up --yes --non-interactive --skip-preview --config-file "$config"
echo
echo "== stack outputs (no values: fingerprints only)"
pulumi stack output --config-file "$config" 2>/dev/null || pulumi stack output
echo
echo "== preview: nothing should change"
pulumi preview --non-interactive --expect-no-changes --config-file "$config"
