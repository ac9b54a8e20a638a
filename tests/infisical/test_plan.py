"""Planning a folder's writes without a network (tenant_secrets/infisical/folder_changes.py): what is created,
updated and deleted, and what is refused before any request."""

from __future__ import annotations

import pytest

from tenant_secrets.infisical import InfisicalError
from tenant_secrets.infisical.folder_changes import _check_input, _folder_path, _Plan, _Progress


def test_a_plan_writes_only_the_differences_in_one_batch_per_kind() -> None:
    held = {"SAME": "fake-1", "CHANGED": "fake-old", "GOING": "fake-3"}
    plan = _Plan.of({"SAME": "fake-1", "CHANGED": "fake-new", "NEW": "fake-4"}, ["GOING", "LONG_GONE"], held)
    assert (plan.create, plan.update, plan.delete) == ({"NEW": "fake-4"}, {"CHANGED": "fake-new"}, ("GOING",))


def test_a_plan_against_what_the_folder_already_holds_is_empty() -> None:
    plan = _Plan.of({"A": "fake-1"}, ["GONE"], {"A": "fake-1"})
    assert (plan.create, plan.update, plan.delete) == ({}, {}, ())


def test_progress_reports_the_keys_written_sorted() -> None:
    progress = _Progress()
    progress.keys("create").update(["B", "A"])
    progress.keys("delete").add("C")
    result = progress.result()
    assert (result.created, result.updated, result.deleted, result.changed) == (("A", "B"), (), ("C",), True)


@pytest.mark.parametrize(
    ("given", "normal"), [("a/b/", "/a/b"), ("/a/b", "/a/b"), (" /tenants/acme/ ", "/tenants/acme"), ("/", "/")]
)
def test_folder_paths_are_normalised(given: str, normal: str) -> None:
    assert _folder_path(given) == normal


def test_a_folder_path_that_could_reach_elsewhere_is_refused() -> None:
    with pytest.raises(InfisicalError, match="segments may contain only letters, digits, - and _"):
        _folder_path("/tenants/../hono-api")


@pytest.mark.parametrize(
    ("upsert", "delete", "message"),
    [
        ({" PADDED": "fake"}, [], "invalid secret key"),
        ({"A:B": "fake"}, [], "invalid secret key"),
        ({"BOTH": "fake"}, ["BOTH"], "are both set and deleted"),
        ({"TRIMMED": " fake "}, [], "begin or end with whitespace"),
    ],
)
def test_what_infisical_would_refuse_or_alter_is_refused_before_any_write(
    upsert: dict[str, str], delete: list[str], message: str
) -> None:
    with pytest.raises(InfisicalError, match=message) as err:
        _check_input("dev", "/tenants/acme", upsert, delete)
    assert "fake" not in str(err.value)  # names keys, never a value
