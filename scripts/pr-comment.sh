#!/usr/bin/env bash
# The pull request's one plan comment, from the previews' plan.md artifacts: which stacks were previewed,
# that the others are untouched by the change (`tenantctl affected`), then each stack's plan. What
# .github/workflows/pull-request.yml posts (one comment, updated in place: the marker on its first line).
#
#   scripts/pr-comment.sh --matrix "$(tenantctl affected --base <ref> --json)" --plans DIR --prefix plan-base \
#     [--refused FILE] > body.md
#
# DIR holds one folder per previewed stack, <prefix>-<stack>/plan.md; a stack without one failed. Stacks with
# regions (the matrix entries' `region`) are grouped by region, then stack (docs/decisions/0054-regions.md).
# --refused FILE: what `tenantctl validate --base` refused (one line per problem: file, line, field), shown
# first; an empty or absent file: nothing refused.
set -euo pipefail
matrix='' plans='' prefix='' refused=''
while [ $# -gt 0 ]; do
  case $1 in
    --matrix) matrix=$2; shift 2 ;;
    --plans) plans=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --refused) refused=$2; shift 2 ;;
    *) echo "pr-comment.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$matrix" ] || [ -z "$plans" ] || [ -z "$prefix" ]; then
  echo "usage: scripts/pr-comment.sh --matrix JSON --plans DIR --prefix PREFIX [--refused FILE]" >&2
  exit 2
fi
limit=60000 # GitHub refuses a comment over 65,536 characters
previewed=$(jq -r '[.stacks[].stack | "`\(.)`"] | join(", ")' <<< "$matrix")
untouched=$(jq -r '[.untouched[] | "`\(.)`"] | join(", ")' <<< "$matrix")
count=$(jq -r '.stacks | length' <<< "$matrix")
body=$(
  echo "<!-- tenant-secrets plan -->"
  echo "### tenant-secrets plan: ${count} stack(s) previewed"
  echo
  if [ -n "$refused" ] && [ -s "$refused" ]; then
    echo "**tenants.yaml is refused against the base branch (\`tenantctl validate --base\`): this change cannot be applied as it is.**"
    echo
    echo '```text'
    cat "$refused"
    echo '```'
    echo
  fi
  echo "Previewed, as this change touches their tenants or settings: ${previewed:-none}."
  if [ -n "$untouched" ]; then
    echo "Not previewed: ${untouched}. This change touches none of their tenants or settings (\`tenantctl affected\`), so their plans are unchanged."
  fi
  region=''
  # "region<TAB>stack", sorted by region then stack; "-" for a stack without a region (listed as is, in order)
  while IFS=$'\t' read -r in stack; do
    if [ "$in" != - ] && [ "$in" != "$region" ]; then
      region=$in
      echo
      echo "## Region \`${region}\`: $(jq -r --arg r "$region" '[.stacks[] | select(.region == $r)] | length' <<< "$matrix") stack(s)"
    fi
    echo
    cat "${plans}/${prefix}-${stack}/plan.md" 2>/dev/null || echo "The preview of ${stack} failed; see the job log."
  done < <(jq -r 'if any(.stacks[]; .region) then (.stacks | sort_by(.region // "", .stack)) else .stacks end
                  | .[] | "\(.region // "-")\t\(.stack)"' <<< "$matrix")
)
if [ "${#body}" -gt "$limit" ]; then
  body="${body:0:$limit}

*The comment is cut here (GitHub's size limit): each stack's whole plan is in its job's summary.*"
fi
printf '%s\n' "$body"
