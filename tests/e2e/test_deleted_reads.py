"""Issue 26, item 8, on the real engine: the A-to-B runbook's step 6 (`storage: database`) on a stack with
`retainOnDelete: false`, while a key still reads `{from: infisical}` from the tenant's folder. The plan
is refused, naming the folder, the tenant and the key and what to do, and nothing is deleted; the
runbook's way (the value taken into the stack config first) then applies and empties the folder."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Project, configure
from tests.e2e.steps import Step, hand_made, run_steps

LEGACY = "fake-legacy-alder-0001"
BOTH = """\
version: 1
defaults: {storage: both, environments: [dev]}
tenants:
  - subdomain: alder
    secrets:
      LEGACY_API_KEY: {from: infisical, path: /tenants/alder, key: LEGACY_API_KEY}
"""
DATABASE = BOTH.replace("    secrets:\n", "    storage: database\n    secrets:\n")
FROM_CONFIG = DATABASE.replace("{from: infisical, path: /tenants/alder, key: LEGACY_API_KEY}", "{from: config}")


@pytest.mark.e2e
@pytest.mark.long
def test_a_folder_a_source_still_reads_is_never_deleted(project: Project, master_key: str) -> None:
    project.write_tenants(BOTH)
    stack = project.stack("dev")
    configure(stack, secrets_config={}, master_keys={"v1": master_key})  # retainOnDelete: false
    steps = [
        Step(
            "alder in both stores, its key read from its own folder (the runbook's step 1)",
            by_hand=lambda p: hand_made(p, "/tenants/alder", {"LEGACY_API_KEY": LEGACY}),
            folders={"/tenants/alder": {"LEGACY_API_KEY": LEGACY}},
            rows={"LEGACY_API_KEY"},
        ),
        Step(
            "storage: database while the key still reads the folder: the plan is refused, nothing deleted",
            tenants=DATABASE,
            refused=[
                "tenant alder, LEGACY_API_KEY: reads LEGACY_API_KEY from Infisical dev:/tenants/alder, a folder "
                "this stack's run deletes",
                "Keep alder at storage: both until no key reads its folder",
            ],
            folders={"/tenants/alder": {"LEGACY_API_KEY": LEGACY}},
            rows={"LEGACY_API_KEY"},
        ),
        Step(
            "the value taken into the stack config first (step 7): the folder's key goes, the row stays",
            tenants=FROM_CONFIG,
            config={("alder", "LEGACY_API_KEY"): LEGACY},
            folders={"/tenants/alder": {}},
            rows={"LEGACY_API_KEY"},
        ),
    ]
    run_steps(project, stack, steps, "a folder still read")
