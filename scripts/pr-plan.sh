#!/usr/bin/env bash
# The pull-request preview of one stack: what .github/workflows/pull-request.yml runs, and what
# tests/e2e/test_pull_request.py runs the same way. Run it from the trusted checkout (the base
# branch's), after `make setup` there, with the pull request's head checked out in another folder:
#
#   scripts/pr-plan.sh --stack prod --head ../head --out plan.md               # base code, head data
#   scripts/pr-plan.sh --stack prod --head ../head --out plan.md --code head   # after a reviewer's approval
#
# --code base: `tenantctl pr-data` (this checkout's) checks the head's tenants.yaml and
#   Pulumi.<stack>.yaml and copies them here; this checkout's program previews them. Nothing of the
#   head runs: not its Makefile, scripts, program or tenantctl.
# --code head: the head's own checkout is set up and previewed, its Makefile and program included.
#   The workflow runs this only in a job whose environment requires a reviewer's approval.
# Both mark the run as a pull request's (TENANT_SECRETS_PULL_REQUEST=true): the program then refuses
# `pulumi up`, and a database role that can write (docs/decisions/0022-pull-request-trust.md).
# --out gets the comment: how the preview ran, then the plan or why there is none. Exit 1 when there
# is no plan.
set -euo pipefail
stack='' head='' out=plan.md code=base
while [ $# -gt 0 ]; do
  case $1 in
    --stack) stack=$2; shift 2 ;;
    --head) head=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --code) code=$2; shift 2 ;;
    *) echo "pr-plan.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$stack" ] || [ -z "$head" ] || { [ "$code" != base ] && [ "$code" != head ]; }; then
  echo "usage: scripts/pr-plan.sh --stack NAME --head DIR [--out FILE] [--code base|head]" >&2
  exit 2
fi
base=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
head=$(cd "$head" && pwd)
out=$(realpath -m "$out")
export TENANT_SECRETS_PULL_REQUEST=true

# the note on how this preview runs; with --code base, the head's data files, checked, copied here
(cd "$base" && source scripts/env.sh && tenantctl pr-data --head "$head" --stack "$stack" --code "$code" --note "$out")

if [ "$code" = head ]; then
  cd "$head" && make setup
else
  cd "$base"
fi
source scripts/env.sh
if ! validation=$(tenantctl validate tenants.yaml --stack "$stack" 2>&1); then
  printf '### tenant-secrets plan: stack `%s`: tenants.yaml is not valid\n\n```text\n%s\n```\n' \
    "$stack" "$validation" >> "$out"
  exit 1
fi
echo "$validation" >&2
tenantctl plan --stack "$stack" --format markdown >> "$out"
