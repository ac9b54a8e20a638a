"""apply_secrets writes only differences, one batch per kind of change; folder and read helpers."""

from __future__ import annotations

import pytest

from infisical_server.testing import RunningServer
from tenant_secrets.infisical import ApplyResult, InfisicalClient, InfisicalError
from tests.infisical.conftest import writes

BATCH = "/api/v3/secrets/batch/raw"
SECRETS = {"STRIPE_KEY": "fake-stripe-key-0001", "DB_PASSWORD": "fake-db-password-0001"}


def test_first_apply_creates_the_folder_and_the_secrets(
    client: InfisicalClient, server: RunningServer, path: str
) -> None:
    assert client.list_secrets("dev", path) == {}
    assert not client.folder_exists("dev", path)
    result = client.apply_secrets("dev", path, upsert=SECRETS)
    assert result == ApplyResult(created=("DB_PASSWORD", "STRIPE_KEY"), updated=(), deleted=())
    assert client.folder_exists("dev", path)
    assert client.list_secrets("dev", path) == SECRETS
    assert client.get_secret("dev", path, "STRIPE_KEY") == "fake-stripe-key-0001"
    assert client.get_secret("dev", path, "ABSENT") is None


def test_a_value_infisical_hides_from_the_identity_is_an_error_not_its_placeholder(
    client: InfisicalClient, server: RunningServer, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An identity allowed to see a secret but not its value gets ``<hidden-by-infisical>`` back."""
    client.apply_secrets("dev", path, upsert=SECRETS)
    ask = client._sdk.secrets.get_secret_by_name

    def hidden(**kwargs: object) -> object:
        return ask(**{**kwargs, "view_secret_value": False})

    monkeypatch.setattr(client._sdk.secrets, "get_secret_by_name", hidden)
    with pytest.raises(InfisicalError, match="may not read the value of STRIPE_KEY") as error:
        client.get_secret("dev", path, "STRIPE_KEY")
    assert error.value.keys == ("STRIPE_KEY",)


def test_a_folder_expected_new_is_created_first_and_not_read(
    client: InfisicalClient, server: RunningServer, path: str
) -> None:
    server.reset_requests()
    result = client.apply_secrets("dev", path, upsert=SECRETS, folder_is_new=True)
    assert result == ApplyResult(created=("DB_PASSWORD", "STRIPE_KEY"), updated=(), deleted=())
    assert server.request_counts() == {"POST /api/v2/folders": 1, f"POST {BATCH}": 1}
    assert client.list_secrets("dev", path) == SECRETS


def test_a_folder_expected_new_that_exists_is_read_and_adopted(
    client: InfisicalClient, server: RunningServer, path: str
) -> None:
    client.apply_secrets("dev", path, upsert={"STRIPE_KEY": SECRETS["STRIPE_KEY"], "OLD": "fake-old"})
    server.reset_requests()
    result = client.apply_secrets("dev", path, upsert=SECRETS, folder_is_new=True)
    assert result == ApplyResult(created=("DB_PASSWORD",), updated=(), deleted=())
    # the folder create is refused ("already exists"), so the folder is read, and only the missing key sent
    assert server.request_counts() == {"POST /api/v2/folders": 1, "GET /api/v3/secrets/raw": 1, f"POST {BATCH}": 1}
    assert client.list_secrets("dev", path) == {**SECRETS, "OLD": "fake-old"}


def test_a_second_apply_writes_nothing(client: InfisicalClient, server: RunningServer, path: str) -> None:
    client.apply_secrets("dev", path, upsert=SECRETS)
    server.reset_requests()
    assert client.apply_secrets("dev", path, upsert=SECRETS) == ApplyResult((), (), ())
    counts = server.request_counts()
    assert writes(counts) == {}
    assert counts == {"GET /api/v3/secrets/raw": 1}


def test_with_existing_given_a_no_op_sends_no_request_at_all(
    client: InfisicalClient, server: RunningServer, path: str
) -> None:
    client.apply_secrets("dev", path, upsert=SECRETS)
    server.reset_requests()
    assert not client.apply_secrets("dev", path, upsert=SECRETS, existing=dict(SECRETS)).changed
    assert server.request_counts() == {}


def test_one_changed_value_is_one_batch_update(client: InfisicalClient, server: RunningServer, path: str) -> None:
    client.apply_secrets("dev", path, upsert=SECRETS)
    server.reset_requests()
    result = client.apply_secrets("dev", path, upsert={**SECRETS, "STRIPE_KEY": "fake-stripe-key-0002"})
    assert result == ApplyResult(created=(), updated=("STRIPE_KEY",), deleted=())
    assert writes(server.request_counts()) == {f"PATCH {BATCH}": 1}
    assert client.get_secret("dev", path, "STRIPE_KEY") == "fake-stripe-key-0002"


def test_creates_updates_and_deletes_are_one_batch_each(
    client: InfisicalClient, server: RunningServer, path: str
) -> None:
    client.apply_secrets("dev", path, upsert={"A": "fake-a", "B": "fake-b", "C": "fake-c", "D": "fake-d"})
    server.reset_requests()
    result = client.apply_secrets(
        "dev",
        path,
        upsert={"A": "fake-a", "B": "fake-b2", "C": "fake-c2", "E": "fake-e", "F": "fake-f"},
        delete=["D", "ZZ"],
    )
    assert result == ApplyResult(created=("E", "F"), updated=("B", "C"), deleted=("D",))
    assert writes(server.request_counts()) == {f"POST {BATCH}": 1, f"PATCH {BATCH}": 1, f"DELETE {BATCH}": 1}
    assert client.list_secrets("dev", path) == {
        "A": "fake-a",
        "B": "fake-b2",
        "C": "fake-c2",
        "E": "fake-e",
        "F": "fake-f",
    }


def test_deleting_absent_keys_sends_nothing(client: InfisicalClient, server: RunningServer, path: str) -> None:
    client.apply_secrets("dev", path, upsert={"A": "fake-a"})
    server.reset_requests()
    assert not client.apply_secrets("dev", path, upsert={"A": "fake-a"}, delete=["GONE"]).changed
    assert writes(server.request_counts()) == {}


def test_a_stale_existing_map_converges(client: InfisicalClient, path: str) -> None:
    client.apply_secrets("dev", path, upsert={"A": "fake-a"})
    # The caller believes A is missing and B exists; neither is true.
    result = client.apply_secrets(
        "dev", path, upsert={"A": "fake-a", "B": "fake-b"}, delete=["Z"], existing={"Z": "fake-z"}
    )
    assert result == ApplyResult(created=("B",), updated=(), deleted=())
    assert client.list_secrets("dev", path) == {"A": "fake-a", "B": "fake-b"}


def test_existing_given_for_a_missing_folder_creates_it(client: InfisicalClient, path: str) -> None:
    result = client.apply_secrets("staging", path, upsert={"A": "fake-a"}, existing={})
    assert result.created == ("A",)
    assert client.list_secrets("staging", path) == {"A": "fake-a"}


@pytest.mark.parametrize(
    ("upsert", "delete", "message"),
    [
        ({"K": " fake-padded"}, (), "begin or end with whitespace"),
        ({"K": "fake-two-newlines\n\n"}, (), "begin or end with whitespace"),
        ({"bad:key": "fake-v"}, (), "invalid secret key"),
        ({"K": "fake-v"}, ("K",), "both set and deleted"),
    ],
)
def test_bad_input_is_refused_before_any_request(
    client: InfisicalClient,
    server: RunningServer,
    upsert: dict[str, str],
    delete: tuple[str, ...],
    message: str,
) -> None:
    server.reset_requests()
    with pytest.raises(InfisicalError, match=message) as raised:
        client.apply_secrets("dev", "/tenants/never-written", upsert=upsert, delete=delete)
    assert server.request_counts() == {}
    assert "fake-" not in str(raised.value)


def test_one_trailing_newline_round_trips(client: InfisicalClient, path: str) -> None:
    pem = "fake-pem-line-1\nfake-pem-line-2\n"
    client.apply_secrets("dev", path, upsert={"PEM": pem})
    assert not client.apply_secrets("dev", path, upsert={"PEM": pem}).changed


def test_a_refused_write_is_not_retried_and_names_where(
    client: InfisicalClient, server: RunningServer, path: str
) -> None:
    server.reset_requests()
    with pytest.raises(InfisicalError) as raised:
        client.apply_secrets("qa", path, upsert={"K": "fake-refused-value"}, existing={"OTHER": "x"})
    error = raised.value
    assert error.status == 403
    assert (error.environment, error.path) == ("qa", path)
    assert "qa" in str(error)
    assert "fake-refused-value" not in str(error)
    assert server.request_counts().get(f"POST {BATCH}") == 1


def test_folder_helpers(client: InfisicalClient, path: str) -> None:
    assert client.ensure_folder("dev", path) is True
    assert client.ensure_folder("dev", path) is False
    assert client.ensure_folder("dev", "/") is False
    assert client.folder_exists("dev", path)
    assert client.folder_exists("dev", "/")
    client.apply_secrets("dev", f"{path}/inner", upsert={"K": "fake-k"})
    assert client.delete_folder("dev", path) is True
    assert client.delete_folder("dev", path) is False
    assert not client.folder_exists("dev", path)
    with pytest.raises(InfisicalError, match="root folder"):
        client.delete_folder("dev", "/")


def test_paths_are_normalised_and_checked(client: InfisicalClient, path: str) -> None:
    client.apply_secrets("dev", path.lstrip("/") + "/", upsert={"K": "fake-k"})
    assert client.list_secrets("dev", path) == {"K": "fake-k"}
    with pytest.raises(InfisicalError, match="invalid Infisical folder path"):
        client.list_secrets("dev", "/tenants/bad name")


def test_ensure_folder_treats_already_exists_as_existing(
    client: InfisicalClient, server: RunningServer, path: str
) -> None:
    client.ensure_folder("dev", path)
    # Make the existence check miss it, as when someone else creates the folder in between.
    server.add_fault("/api/v2/folders", method="GET", status=404)
    server.reset_requests()
    assert client.ensure_folder("dev", path) is False
    assert server.request_counts() == {"GET /api/v2/folders": 1, "POST /api/v2/folders": 1}
