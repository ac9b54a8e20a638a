"""The workflows of an environment in regions, run by act (docs/decisions/0054-regions.md). The deploy: each
region's stacks are rows of its matrices, each in its region's GitHub environment; one region's failure leaves the
other region's rows to run, and each row's summary line names its region and stack, applied or behind; a tenant
moving away from a region is not deleted there before the region it moves to applied it (the handover guard). The pull
request: a tenant moved between regions in one change is refused at the top of the plan comment (file, line and
field) and fails the check; the plans are grouped by region.

act stops a run at its first failed job, so the jobs after the owners' (a region's other shards, which GitHub
runs when another region's owner failed: deploy.yml's `dev-shards` condition) are not run here."""

from __future__ import annotations

import os

import pytest
from pulumi import automation as auto

from tenant_secrets.stack.shards import shard_of
from tests.e2e.conftest import configure, git, sdk_listing
from tests.workflows.conftest import PASSPHRASE, Origin
from tests.workflows.test_workflows_run import pull_request

pytestmark = pytest.mark.e2e

EU = {"echo": "fake-plan-echo", "golf": "fake-plan-golf"}
"""Region eu's tenants: one in each of its two shards."""
US = {"hotel": "fake-plan-hotel"}
PREVIEW_SECRETS = (
    "PULUMI_CONFIG_PASSPHRASE",
    "PREVIEW_DATABASE_URL",
    "PREVIEW_INFISICAL_CLIENT_ID",
    "PREVIEW_INFISICAL_CLIENT_SECRET",
)
"""The pull request's preview secrets of tenants.yaml environment dev; a region's are suffixed dev_<region>."""


def regions_file(us: str = "[us]") -> str:
    """EU's tenants in eu, US's in us (``us``: their regions lines)."""
    entries = [(s, "[eu]", v) for s, v in EU.items()] + [(s, us, v) for s, v in US.items()]
    return "version: 1\nregions: [eu, us]\ndefaults: {storage: infisical, environments: [dev]}\ntenants:\n" + "".join(
        f"  - subdomain: {s}\n    regions: {r}\n    secrets:\n      PLAN: {{value: {v}}}\n" for s, r, v in entries
    )


def deploy_in_regions(origin: Origin, stacks: dict[str, tuple[str, str]], broken: str) -> None:
    """dev in regions eu and us, on ``stacks`` (name: region and shard), committed; the deploy's secrets are the
    services', and its passphrase cannot open the stack ``broken`` (its region's GitHub environment holds a
    wrong credential). The unsharded stacks of the fixture are no longer this file's."""
    for name in ("dev", "dev-02"):
        (origin.root / f"Pulumi.{name}.yaml").unlink()
    (origin.root / "tenants.yaml").write_text(regions_file())
    key = os.urandom(32).hex()
    for name, (region, shard) in stacks.items():
        passphrase = "fake-another-regions-passphrase" if name == broken else PASSPHRASE
        env = {**origin.env, "PULUMI_CONFIG_PASSPHRASE": passphrase}
        options = auto.LocalWorkspaceOptions(env_vars=env, secrets_provider="passphrase")
        stack = auto.create_stack(name, work_dir=str(origin.root), opts=options)
        plain = {"shard": shard} if shard else {}
        configure(
            stack,
            secrets_config={},
            master_keys={"v1": key},
            environment="dev",
            region=region,
            keyFolder=f"/hono-api-{region}",
            **plain,
        )
    git(origin.root, "add", "-A")
    git(origin.root, "commit", "-qm", "dev in regions eu and us")
    origin.secrets = {
        "PULUMI_BACKEND_URL": origin.env["PULUMI_BACKEND_URL"],
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "DATABASE_URL": origin.env["DATABASE_URL"],
        "INFISICAL_CLIENT_ID": origin.env["INFISICAL_CLIENT_ID"],
        "INFISICAL_CLIENT_SECRET": origin.env["INFISICAL_CLIENT_SECRET"],
    }


def deploy(origin: Origin, message: str, tenants: str) -> tuple[str, list[str]]:
    """Commit ``tenants`` as tenants.yaml and run the deploy's owners (act stops at their failure): the commit
    and the run's log lines, the run having failed."""
    (origin.root / "tenants.yaml").write_text(tenants)
    git(origin.root, "commit", "-qam", message)
    head = git(origin.root, "rev-parse", "HEAD")
    run = origin.act("push", "deploy.yml", {"ref": "refs/heads/main", "after": head}, job="dev-owner")
    assert run.status != 0, run.explain()
    return head, run.log.splitlines()


@pytest.mark.long
def test_one_regions_failure_leaves_the_other_regions_owner_applied_and_the_summary_names_it(origin: Origin) -> None:
    assert [shard_of(s, 2) for s in EU] == [1, 2]
    # dev in regions: eu in two shards, us in one whose stack the deploy's passphrase cannot open
    deploy_in_regions(origin, {"dev-eu": ("eu", "1/2"), "dev-eu-02": ("eu", "2/2"), "dev-us": ("us", "")}, "dev-us")
    head = git(origin.root, "rev-parse", "HEAD")
    run = origin.act("push", "deploy.yml", {"ref": "refs/heads/main", "after": head}, job="dev-owner")
    assert run.status != 0, run.explain()  # us failed
    lines = run.log.splitlines()

    def said(text: str) -> bool:
        return any(text in line for line in lines)

    assert said(f"region us: stack dev-us is behind {head[:12]}: its deploy job failed (GitHub environment dev-us)")
    assert said(f"region eu: stack dev-eu applied {head[:12]} (GitHub environment dev-eu)"), run.explain()
    # eu's owner shard holds its tenant; us holds nothing
    listed = sdk_listing(origin.infisical, "dev", "/tenants/echo")
    assert listed is not None and {s.secretKey: s.secretValue for s in listed} == {"PLAN": EU["echo"]}
    assert sdk_listing(origin.infisical, "dev", "/tenants/hotel") is None
    # what is left to apply: eu's other shard (the next jobs), and region us
    left = origin.run("tenantctl", "affected", "--since-applied", "--environment", "dev")
    assert left.returncode == 0 and sorted(left.stdout.split()) == ["dev-eu-02", "dev-us"], left.stdout + left.stderr


@pytest.mark.long
def test_a_pull_request_that_moves_a_tenant_between_regions_in_one_change_is_refused_in_its_comment(
    origin: Origin,
) -> None:
    for name in ("dev", "dev-02"):
        (origin.root / f"Pulumi.{name}.yaml").unlink()
    (origin.root / "tenants.yaml").write_text(regions_file())
    options = auto.LocalWorkspaceOptions(env_vars=origin.env, secrets_provider="passphrase")
    for region in ("eu", "us"):
        stack = auto.create_stack(f"dev-{region}", work_dir=str(origin.root), opts=options)
        configure(stack, secrets_config={}, master_keys={"v1": os.urandom(32).hex()}, environment="dev", region=region)
        origin.secrets.update({f"{name}_dev_{region}": origin.secrets[f"{name}_dev"] for name in PREVIEW_SECRETS})
    git(origin.root, "add", "-A")
    git(origin.root, "commit", "-qm", "dev in regions eu and us")
    moved = regions_file("[eu]\n    decommission: [us]")
    event = pull_request(origin, "move-hotel", {"tenants.yaml": moved}, "hotel: from us to eu")
    run = origin.act("pull_request_target", "pull-request.yml", event)
    assert run.status != 0, run.explain()  # the check fails: the change cannot be applied as it is
    assert len(run.comments) == 1, run.explain()
    body = str(run.comments[0]["body"])
    assert "**tenants.yaml is refused against the base branch (`tenantctl validate --base`)" in body, body
    refusal = [line for line in body.splitlines() if line.startswith("tenants.yaml:")]
    assert refusal and "hotel gains eu and leaves us in one change" in refusal[0], body
    assert refusal[0].split(":")[1].isdigit() and "decommission" in refusal[0], body  # file, line and field
    assert body.index("## Region `eu`") < body.index("## Region `us`"), body
    assert "fake-plan-hotel" not in body


@pytest.mark.long
def test_a_tenant_moving_away_is_not_deleted_before_its_new_region_applied_it(origin: Origin) -> None:
    """hotel moves from us to eu in the two changes tenantctl validate --base asks for, but eu's deploy of the
    first failed: the second's us job refuses before its up, and hotel's folder in us keeps its value."""
    deploy_in_regions(origin, {"dev-eu": ("eu", ""), "dev-us": ("us", "")}, "dev-eu")
    first, lines = deploy(origin, "hotel gains eu", regions_file("[us, eu]"))
    assert any(f"region us: stack dev-us applied {first[:12]}" in line for line in lines), "\n".join(lines)
    second, lines = deploy(origin, "hotel leaves us", regions_file("[eu]\n    decommission: [us]"))
    refusal = [line for line in lines if "tenant hotel: stack dev-us would delete it in region us" in line]
    assert refusal and "eu (stack dev-eu has applied no commit)" in refusal[0], "\n".join(lines)
    assert any(f"region us: stack dev-us is behind {second[:12]}" in line for line in lines)
    listed = sdk_listing(origin.infisical, "dev", "/tenants/hotel")
    assert listed is not None and {s.secretKey: s.secretValue for s in listed} == {"PLAN": US["hotel"]}
