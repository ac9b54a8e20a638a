"""The providers' decisions: which keys need a write, and which removals are refused."""

from __future__ import annotations

from tenant_secrets.engine import contract, reconcile
from tenant_secrets.secret.values import fingerprint
from tenant_secrets.store.errors import CompanyNotFoundError

FP_KEY = bytes(range(32))


def test_secret_keys_are_the_uppercase_properties() -> None:
    props = {"owner": "acme", "path": "/tenants/acme", "STRIPE_SECRET_KEY": "x", "SMTP_HOST": "y"}
    assert contract.secret_keys(props) == {"STRIPE_SECRET_KEY", "SMTP_HOST"}


def test_a_decommissioned_owner_deletes_every_key_it_held_and_declared() -> None:
    olds = {"owner": "acme", "fingerprints": {"A_KEY": "fp", "B_KEY": "fp"}, "C_KEY": "value"}
    assert reconcile.keys_to_delete(olds, {"owner": "acme", "decommission": True}) == ["A_KEY", "B_KEY", "C_KEY"]
    assert reconcile.keys_to_delete(olds, {"owner": "acme", "decommissioned": ["B_KEY"]}) == ["B_KEY"]


def test_a_publication_withdraws_what_it_last_wrote_and_no_longer_declares() -> None:
    olds = {"fingerprints": {"V1": "a"}, "declared_fingerprints": {"V1": "a", "V2": "b"}}
    assert reconcile.withdrawn(olds, {"fingerprints": {"V2": "b"}}) == ["V1"]
    assert reconcile.withdrawn({"fingerprints": {"V1": "a"}}, {"fingerprints": {}}) == ["V1"]  # an older state
    assert reconcile.tracked_keys(olds) == {"V1", "V2"}


def test_unchanged_values_need_no_write() -> None:
    news = {"owner": "acme", "A_KEY": "one", "B_KEY": "two"}
    desired = reconcile.desired_fingerprints("acme", news, FP_KEY)
    assert reconcile.needs_write(desired, desired, []) == []


def test_one_changed_value_is_the_only_write() -> None:
    olds = reconcile.desired_fingerprints("acme", {"A_KEY": "one", "B_KEY": "two"}, FP_KEY)
    desired = reconcile.desired_fingerprints("acme", {"A_KEY": "one", "B_KEY": "changed"}, FP_KEY)
    assert reconcile.needs_write(olds, desired, []) == ["B_KEY"]


def test_added_and_decommissioned_keys_need_writes() -> None:
    olds = reconcile.desired_fingerprints("acme", {"A_KEY": "one", "OLD_KEY": "x"}, FP_KEY)
    desired = reconcile.desired_fingerprints("acme", {"A_KEY": "one", "NEW_KEY": "n"}, FP_KEY)
    assert reconcile.needs_write(olds, desired, ["OLD_KEY"]) == ["NEW_KEY", "OLD_KEY"]


def test_a_decommission_marker_for_a_key_already_gone_needs_nothing() -> None:
    desired = reconcile.desired_fingerprints("acme", {"A_KEY": "one"}, FP_KEY)
    assert reconcile.needs_write(desired, desired, ["LONG_GONE"]) == []


def test_a_key_removed_without_marker_is_refused_with_the_marker_to_use() -> None:
    failures = reconcile.removed_key_failures("acme", {"A_KEY": "1", "B_KEY": "2"}, {"A_KEY": "1"}, [])
    assert [f.property for f in failures] == [""]  # the engine would print the named property's value
    assert failures[0].reason.startswith("acme: B_KEY is no longer declared")
    assert "B_KEY: {decommission: true}" in failures[0].reason
    assert "acme" in failures[0].reason


def test_a_key_removed_with_marker_is_allowed() -> None:
    assert reconcile.removed_key_failures("acme", {"A_KEY": "1", "B_KEY": "2"}, {"A_KEY": "1"}, ["B_KEY"]) == []


def test_an_owner_removed_without_marker_is_refused() -> None:
    failures = reconcile.removed_tenant_failures(["acme", "codewiser"], ["acme"], [])
    assert len(failures) == 1
    assert "codewiser" in failures[0].reason
    assert "decommission: true" in failures[0].reason


def test_removals_at_fleet_size_stay_short() -> None:
    """5,000 tenants, 150 of them dropped: a few named one by one, the rest counted in one short line."""
    fleet = [f"kill-{n:04}" for n in range(5000)]
    failures = reconcile.removed_tenant_failures(fleet, fleet[150:], [])
    assert [f.reason.split(" ", 1)[0] for f in failures[:3]] == ["kill-0000", "kill-0001", "kill-0002"]
    assert failures[3].reason.startswith("147 more tenant(s) or folder(s) are no longer declared")
    assert "kill-0003, kill-0004, kill-0005 and 144 more" in failures[3].reason
    assert len(failures) == 4
    assert all(len(f.reason) < 300 and f.property == "" for f in failures)
    missing = str(CompanyNotFoundError(fleet))
    assert "kill-0000, kill-0001, kill-0002 and 4997 more" in missing and len(missing) < 300
    keys = {f"KEY_{n}": "1" for n in range(40)}
    failures = reconcile.removed_key_failures("acme", keys, {}, [])
    assert len(failures) == 4
    assert failures[3].reason.startswith("acme: 37 more key(s) are no longer declared")
    assert all(len(f.reason) < 300 for f in failures)


def test_an_owner_removed_from_a_region_is_told_the_regions_marker() -> None:
    [failure] = reconcile.removed_tenant_failures(["acme", "codewiser"], ["acme"], [], region="us")
    assert failure.reason.startswith("codewiser is no longer declared in region us (tenants.yaml)")
    assert "add `decommission: [us]` to the entry to delete them in us only" in failure.reason
    fleet = [f"kill-{n}" for n in range(5)]
    rest = reconcile.removed_tenant_failures(fleet, [], [], region="us")[-1].reason
    assert rest.startswith("2 more tenant(s) or folder(s) are no longer declared in region us")
    assert "add `decommission: [us]` to each entry" in rest


def test_a_decommissioned_owner_may_go() -> None:
    assert reconcile.removed_tenant_failures(["acme", "codewiser"], ["acme"], ["codewiser"]) == []


def test_fingerprints_differ_per_owner_and_key_for_equal_values() -> None:
    assert fingerprint(FP_KEY, "acme", "K", "same") != fingerprint(FP_KEY, "beta", "K", "same")
    assert fingerprint(FP_KEY, "acme", "K1", "same") != fingerprint(FP_KEY, "acme", "K2", "same")


def test_fingerprints_do_not_contain_the_value() -> None:
    value = "fake-webhook-secret-0001"
    assert value not in fingerprint(FP_KEY, "acme", "K", value)
    assert len(fingerprint(FP_KEY, "acme", "K", value)) == 16


def test_a_declared_change_lets_the_engine_name_the_keys() -> None:
    written = {"A_KEY": "fp-a", "B_KEY": "fp-b"}
    verdict = reconcile.diff_verdict
    assert verdict(changed=False, replacing=False, recorded=written, declared=written) is False
    assert verdict(changed=True, replacing=False, recorded=written, declared=written) is None
    # drift found by a refresh, a replacement, or a state that recorded nothing: the provider says "changed"
    assert verdict(changed=True, replacing=False, recorded={"A_KEY": "fp-a"}, declared=written) is True
    assert verdict(changed=True, replacing=False, recorded={**written, "A_KEY": "fp-x"}, declared=written) is True
    assert verdict(changed=True, replacing=True, recorded=written, declared=written) is True
    assert verdict(changed=True, replacing=False, recorded=written, declared=None) is True


def test_a_folder_resource_writes_only_its_owners_folder() -> None:
    assert reconcile.folder_path_failures("codewiser", "/tenants/codewiser") == []
    assert reconcile.folder_path_failures("hono-api", "/hono-api") == []
    for owner, path in [
        ("codewiser", "/tenants/other"),
        ("codewiser", "/tenants/codewiser/sub"),
        ("..", "/tenants/.."),
        ("a/b", "/tenants/a/b"),
        ("Codewiser", "/tenants/Codewiser"),
        ("tenants", "/tenants"),
        ("shared", "/shared"),
    ]:
        failures = reconcile.folder_path_failures(owner, path)
        assert [f.property for f in failures] == ["path"], (owner, path)
        assert owner in failures[0].reason
