"""`tenantctl migrate`: which tenants move, what they gain, and a tenants.yaml rewritten in place."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from tenant_secrets.tenantctl import main as cli
from tenant_secrets.tenantctl.migrate import MigrationError, choose, plan_migration, rewrite
from tenant_secrets.tenants_file.loader import parse_tenants
from tenant_secrets.tenants_file.model import plan_environment
from tenant_secrets.tenants_file.sources import InfisicalSource

REPO = Path(__file__).resolve().parents[2]

FILE = """\
# yaml-language-server: $schema=./tenants.schema.json
version: 1

defaults:
  storage: infisical                     # Strategy A for now
  environments: [dev, prod]

tenants:
  - subdomain: alpha                     # the first customer
    name: Alpha Ltd
    secrets:
      STRIPE_SECRET_KEY: {from: config}

  - subdomain: bravo
    secrets: {}

  - subdomain: charlie
    storage: database
    secrets:
      STRIPE_SECRET_KEY: {from: config}

  - subdomain: delta
    environments: [dev]
    overrides:
      dev:
        secrets:
          OLD_KEY: {decommission: true}
"""
HELD = {
    "dev": {
        "/tenants/alpha": ["STRIPE_SECRET_KEY", "WEBHOOK_SECRET", "DEV_ONLY"],
        "/tenants/bravo": ["SENDGRID_API_KEY", "lower_case"],
        "/tenants/delta": ["OLD_KEY", "TOKEN"],
    },
    "prod": {"/tenants/alpha": ["STRIPE_SECRET_KEY", "WEBHOOK_SECRET"], "/tenants/bravo": []},
}


MIGRATED = """\
# yaml-language-server: $schema=./tenants.schema.json
version: 1

defaults:
  storage: infisical                     # Strategy A for now
  environments: [dev, prod]

tenants:
  - subdomain: alpha                     # the first customer
    name: Alpha Ltd
    storage: both
    secrets:
      STRIPE_SECRET_KEY: {from: config}
      WEBHOOK_SECRET: {from: infisical, path: /tenants/alpha, key: WEBHOOK_SECRET}
    overrides:
      dev:
        secrets:
          DEV_ONLY: {from: infisical, path: /tenants/alpha, key: DEV_ONLY}

  - subdomain: bravo
    storage: both
    secrets: {}
    overrides:
      dev:
        secrets:
          SENDGRID_API_KEY: {from: infisical, path: /tenants/bravo, key: SENDGRID_API_KEY}

  - subdomain: charlie
    storage: database
    secrets:
      STRIPE_SECRET_KEY: {from: config}

  - subdomain: delta
    storage: both
    environments: [dev]
    secrets:
      TOKEN: {from: infisical, path: /tenants/delta, key: TOKEN}
    overrides:
      dev:
        secrets:
          OLD_KEY: {decommission: true}
"""


def added_lines(before: str, after: str) -> list[str]:
    return [
        line[1:]
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
    ]


def test_a_batch_takes_the_next_tenants_only_in_infisical_in_file_order() -> None:
    tf = parse_tenants(FILE)
    assert choose(tf, "database", [], 2) == ["alpha", "bravo"]
    assert choose(tf, "database", [], 10) == ["alpha", "bravo", "delta"]
    assert choose(tf, "infisical", [], 5) == ["charlie"]
    assert choose(tf, "database", ["delta", "alpha"], None) == ["delta", "alpha"]
    with pytest.raises(MigrationError, match=r"moves to database: charlie \(storage: database\)"):
        choose(tf, "database", ["alpha", "charlie"], None)
    with pytest.raises(MigrationError, match=r"not in tenants\.yaml: zulu"):
        choose(tf, "database", ["zulu"], None)


def test_undeclared_keys_read_their_own_folder_everywhere_or_per_environment() -> None:
    tf = parse_tenants(FILE)
    migration = plan_migration(tf, "database", ["alpha", "bravo", "delta"], HELD)
    alpha, bravo, delta = migration.moves
    assert (alpha.everywhere, dict(alpha.per_environment)) == (("WEBHOOK_SECRET",), {"dev": ("DEV_ONLY",)})
    assert (bravo.everywhere, dict(bravo.per_environment)) == ((), {"dev": ("SENDGRID_API_KEY",)})
    # a key marked for deletion is not brought back
    assert (delta.everywhere, dict(delta.per_environment)) == (("TOKEN",), {})
    assert migration.skipped == (
        "dev:/tenants/bravo/lower_case: 'lower_case' is not an environment-style name; "
        "left out (it stays in Infisical)",
    )

    text = rewrite(FILE, migration)
    assert text == MIGRATED
    migrated = parse_tenants(text)
    for env, held in HELD.items():
        plan = {t.subdomain: t for t in plan_environment(migrated, env).tenants}
        for folder, keys in held.items():
            tenant = plan[folder.rsplit("/", 1)[1]]
            assert tenant.storage == {"infisical", "database"}
            for key in keys:
                if key == "lower_case" or key in tenant.decommissioned_keys:
                    continue
                source = tenant.secrets[key]
                if key != "STRIPE_SECRET_KEY":
                    assert source == InfisicalSource(folder, key, None)
    assert plan_environment(migrated, "dev").tenants[2].storage == {"database"}  # charlie untouched


def test_the_reverse_gives_both_stores_and_adds_no_key() -> None:
    tf = parse_tenants(FILE)
    text = rewrite(FILE, plan_migration(tf, "infisical", ["charlie"], {}))
    assert added_lines(FILE, text) == ["    storage: database", "    storage: both"]


def test_the_repository_file_round_trips_byte_for_byte_and_changes_only_the_tenant() -> None:
    original = (REPO / "tenants.yaml").read_text()
    tf = parse_tenants(original)
    assert rewrite(original, plan_migration(tf, "database", [], {})) == original
    held = {"dev": {"/tenants/another-company": ["SENDGRID_API_KEY", "LEGACY_TOKEN"]}, "staging": {}}
    text = rewrite(original, plan_migration(tf, "database", ["another-company"], held))
    assert added_lines(original, text) == [
        "    storage: infisical",
        "    storage: both",
        "    overrides:",
        "      dev:",
        "        secrets:",
        "          LEGACY_TOKEN: {from: infisical, path: /tenants/another-company, key: LEGACY_TOKEN}",
    ]


class FakeKeys:
    def __init__(self, tree: dict[str, dict[str, list[str]]]) -> None:
        self.tree = tree
        self.asked: list[tuple[str, str]] = []

    def list_tree_keys(self, environment: str, path: str = "/") -> dict[str, list[str]]:
        self.asked.append((environment, path))
        return self.tree.get(environment, {})


def test_the_command_rewrites_the_file_with_one_listing_per_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeKeys(HELD)
    monkeypatch.setattr(cli, "_held_keys", lambda envs: {env: fake.list_tree_keys(env, "/tenants") for env in envs})
    path = tmp_path / "tenants.yaml"
    path.write_text(FILE)
    assert cli.main(["migrate", str(path), "--to", "database", "--batch", "1"]) == 0
    assert fake.asked == [("dev", "/tenants"), ("prod", "/tenants")]
    err = capsys.readouterr().err
    assert "1 tenant(s) now storage: both (alpha); 2 key(s) now read {from: infisical}" in err
    assert "tenantctl verify --stack <stack> --tenants alpha" in err
    assert "storage: both" in path.read_text()
    # a second batch takes the next tenant; asking for one that already moved is refused, the file untouched
    assert cli.main(["migrate", str(path), "--to", "database", "--batch", "1"]) == 0
    assert "(bravo)" in capsys.readouterr().err
    before = path.read_text()
    assert cli.main(["migrate", str(path), "--to", "database", "--tenants", "alpha"]) == 1
    assert "moves to database: alpha (storage: both)" in capsys.readouterr().err
    assert path.read_text() == before


REGIONS_FILE = """\
version: 1
regions: [eu, us]
defaults: {storage: infisical, environments: [dev, prod]}
tenants:
  - {subdomain: alpha, regions: [eu, us], secrets: {}}
  - {subdomain: bravo, regions: [eu], secrets: {}}
  - {subdomain: charlie, regions: [us], secrets: {}}
  - {subdomain: delta, regions: [eu], decommission: [us], secrets: {}}
"""


def test_in_regions_the_move_to_the_database_takes_one_region_and_the_tenants_living_there_alone() -> None:
    """A `{from: infisical}` key added from eu's folder would be read from us's folder too: alpha, of both
    regions, is refused; bravo and delta (which left us) move with their folder's keys as eu lists them."""
    tf = parse_tenants(REGIONS_FILE)
    assert choose(tf, "database", [], 10, "eu") == ["bravo", "delta"]
    assert choose(tf, "database", [], 10, "us") == ["charlie"]
    with pytest.raises(MigrationError, match=r"^tenants\.yaml declares regions \(eu, us\): pass --region, with"):
        choose(tf, "database", ["bravo"], None)
    with pytest.raises(MigrationError, match=r"lives in eu alone moves with --region eu: alpha \(regions: eu, us\)"):
        choose(tf, "database", ["bravo", "alpha"], None, "eu")
    with pytest.raises(MigrationError, match=r"--region ap: not declared in tenants\.yaml \(regions: eu, us\)"):
        choose(tf, "database", [], 1, "ap")
    with pytest.raises(MigrationError, match=r"^--region: only with --to database"):
        choose(tf, "infisical", ["bravo"], None, "eu")
    with pytest.raises(MigrationError, match="declares no regions; leave --region out"):
        choose(parse_tenants(FILE), "database", [], 1, "eu")
    held = {"dev": {"/tenants/bravo": ["SENDGRID_API_KEY"]}, "prod": {"/tenants/bravo": ["SENDGRID_API_KEY"]}}
    migration = plan_migration(tf, "database", ["bravo"], held, "eu")
    migrated = parse_tenants(rewrite(REGIONS_FILE, migration))
    bravo = next(t for t in plan_environment(migrated, "prod", "eu").tenants if t.subdomain == "bravo")
    assert bravo.storage == {"infisical", "database"}
    assert bravo.secrets["SENDGRID_API_KEY"] == InfisicalSource("/tenants/bravo", "SENDGRID_API_KEY", None)
    assert "bravo" not in {t.subdomain for t in plan_environment(migrated, "prod", "us").tenants}


def test_the_command_takes_the_region_and_lists_that_regions_folders_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeKeys({"dev": {"/tenants/charlie": ["TOKEN"]}, "prod": {"/tenants/charlie": ["TOKEN"]}})
    monkeypatch.setattr(cli, "_held_keys", lambda envs: {env: fake.list_tree_keys(env, "/tenants") for env in envs})
    path = tmp_path / "tenants.yaml"
    path.write_text(REGIONS_FILE)
    assert cli.main(["migrate", str(path), "--to", "database", "--batch", "5"]) == 1
    assert "pass --region" in capsys.readouterr().err
    assert fake.asked == [] and path.read_text() == REGIONS_FILE
    assert cli.main(["migrate", str(path), "--to", "database", "--region", "us", "--batch", "5"]) == 0
    assert "1 tenant(s) now storage: both (charlie); 1 key(s) now read {from: infisical}" in capsys.readouterr().err
