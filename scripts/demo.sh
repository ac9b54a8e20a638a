#!/usr/bin/env bash
# make demo: a real `pulumi up` of tenants.yaml on the dev stack against the local services, then a
# preview that must show no changes. Run it twice: the second run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
python -m dev.services up
eval "$(python -m dev.services env)"

# The demo runs the project from its own folder under .state/ (code and tenants.yaml linked, the
# stack config its own), so its generated secrets never touch the committed Pulumi.dev.yaml. Its copy is
# made once: a demo stack made before Pulumi.dev.yaml set `buckets` keeps one resource per tenant.
root=$(pwd)
project=.state/demo/project
mkdir -p "$project"
for f in __main__.py components tenant_secrets provider tenants.yaml tenants.schema.json; do
  ln -sfn "$root/$f" "$project/$f"
done
sed "s|virtualenv: .venv|virtualenv: $root/.venv|" Pulumi.yaml > "$project/Pulumi.yaml"
[ -f "$project/Pulumi.dev.yaml" ] || cp Pulumi.dev.yaml "$project/Pulumi.dev.yaml"
cd "$project"

pulumi login --non-interactive "$PULUMI_BACKEND_URL" >/dev/null
pulumi stack select --non-interactive --create --secrets-provider passphrase dev >/dev/null
python -m dev.demo --config-file Pulumi.dev.yaml --env-file ../env
source ../env

pulumi up --yes --non-interactive --skip-preview
echo
echo "== stack outputs (no values: settings and counts)"
pulumi stack output
echo
echo "== preview: nothing should change"
pulumi preview --non-interactive --expect-no-changes
