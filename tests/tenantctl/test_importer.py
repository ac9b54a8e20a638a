"""`tenantctl import`: folders and key names in, a valid tenants.yaml out, odd names reported."""

from __future__ import annotations

from tenant_secrets.tenantctl.importer import discover, render
from tenant_secrets.tenants_file.loader import parse_tenants
from tenant_secrets.tenants_file.model import plan_environment
from tenant_secrets.tenants_file.sources import InfisicalSource


class FakeInfisical:
    """Folders and keys per environment; records what was asked."""

    def __init__(self, tree: dict[str, dict[str, list[str]]]) -> None:
        self.tree = tree  # env -> folder path -> keys
        self.asked: list[tuple[str, str]] = []

    def list_folders(self, environment: str, path: str) -> list[str]:
        self.asked.append((environment, path))
        prefix = path.rstrip("/") + "/"
        return sorted({p[len(prefix) :].split("/")[0] for p in self.tree.get(environment, {}) if p.startswith(prefix)})

    def list_secret_keys(self, environment: str, path: str) -> list[str] | None:
        self.asked.append((environment, path))
        return self.tree.get(environment, {}).get(path)


TREE = {
    "dev": {
        "/tenants/codewiser": ["STRIPE_SECRET_KEY", "DEV_ONLY_KEY"],
        "/tenants/beta": ["SENDGRID_API_KEY"],
        "/tenants/Not_A_Label": ["X"],
        "/tenants/api": ["X"],
        "/tenants/xn--pple-43d": ["X"],
        "/tenants/3f2b8c1e-9d4a-4e6b-8a1f-2c7d5e9b0a14": ["X"],  # reads as a company id (issue 26, item 6)
        "/hono-api": ["BETTER_AUTH_SECRET", "lowercase_key"],
    },
    "prod": {
        "/tenants/codewiser": ["STRIPE_SECRET_KEY"],
        "/tenants/123": [],
    },
}


def test_an_environment_becomes_a_valid_tenants_file_of_infisical_sources() -> None:
    reader = FakeInfisical(TREE)
    found = discover(reader, ["dev", "prod"])
    text = render(found)
    tenants = parse_tenants(text)

    dev = plan_environment(tenants, "dev")
    by_owner = {t.subdomain: t for t in dev.tenants}
    assert set(by_owner) == {"codewiser", "beta"}
    assert by_owner["codewiser"].secrets == {
        "STRIPE_SECRET_KEY": InfisicalSource("/tenants/codewiser", "STRIPE_SECRET_KEY", None),
        "DEV_ONLY_KEY": InfisicalSource("/tenants/codewiser", "DEV_ONLY_KEY", None),
    }
    assert by_owner["codewiser"].storage == frozenset({"infisical"})
    assert [f.name for f in dev.platform] == ["hono-api"]
    assert set(dev.platform[0].secrets) == {"BETTER_AUTH_SECRET"}

    prod = plan_environment(tenants, "prod")
    assert [(f.name, dict(f.secrets)) for f in prod.platform] == [("hono-api", {})]  # not in prod: nothing to read
    assert {t.subdomain: set(t.secrets) for t in prod.tenants} == {
        "codewiser": {"STRIPE_SECRET_KEY"},
        "123": set(),
    }
    assert '- subdomain: "123"' in text  # quoted, so it reads back as text
    assert "environments: [dev]" in text  # beta is in dev only

    skipped = {(s.environment, s.where) for s in found.skipped}
    assert skipped == {
        ("dev", "/tenants/Not_A_Label"),
        ("dev", "/tenants/api"),
        ("dev", "/tenants/xn--pple-43d"),
        ("dev", "/tenants/3f2b8c1e-9d4a-4e6b-8a1f-2c7d5e9b0a14"),
        ("dev", "/hono-api/lowercase_key"),
    }
    assert all("left out" in str(s) for s in found.skipped)


def test_without_platform_only_tenants_are_read() -> None:
    reader = FakeInfisical(TREE)
    found = discover(reader, ["dev"], platform=False)
    assert found.platform == {}
    assert ("dev", "/") not in reader.asked
    assert "platform:" not in render(found)


def test_an_empty_environment_is_an_empty_but_valid_file() -> None:
    text = render(discover(FakeInfisical({}), ["dev"]))
    assert parse_tenants(text).document.tenants == []
