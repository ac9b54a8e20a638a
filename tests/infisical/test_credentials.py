"""Credentials from the environment, and what a repr shows."""

from __future__ import annotations

import pytest

from tenant_secrets.infisical import InfisicalClient, InfisicalCredentials, InfisicalError, RetryPolicy

ENV = {
    "INFISICAL_SITE_URL": "http://127.0.0.1:9/",
    "INFISICAL_CLIENT_ID": "fake-client-id",
    "INFISICAL_CLIENT_SECRET": "fake-client-secret-0001",
    "INFISICAL_PROJECT_ID": "fake-project",
}


def test_from_env_reads_the_four_variables() -> None:
    creds = InfisicalCredentials.from_env(ENV)
    assert creds == InfisicalCredentials(
        "http://127.0.0.1:9", "fake-client-id", "fake-client-secret-0001", "fake-project"
    )


@pytest.mark.parametrize("missing", sorted(ENV))
def test_from_env_names_the_missing_variable(missing: str) -> None:
    env = {k: v for k, v in ENV.items() if k != missing}
    with pytest.raises(InfisicalError, match=missing) as raised:
        InfisicalCredentials.from_env(env)
    assert "fake-client-secret-0001" not in str(raised.value)


def test_an_empty_variable_counts_as_missing() -> None:
    with pytest.raises(InfisicalError, match="INFISICAL_CLIENT_SECRET is not set"):
        InfisicalCredentials.from_env({**ENV, "INFISICAL_CLIENT_SECRET": "  "})


def test_reprs_never_show_the_client_secret() -> None:
    creds = InfisicalCredentials.from_env(ENV)
    for text in (repr(creds), str(creds), repr(InfisicalClient(creds))):
        assert "fake-client-secret-0001" not in text
    assert "fake-client-id" in repr(creds)


def test_backoff_grows_with_jitter_and_stays_bounded() -> None:
    policy = RetryPolicy(attempts=6, base_delay=0.5, max_delay=4.0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (6, 4.0)]:
        delays = [policy.delay(attempt, None) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1
    assert 3.0 <= policy.delay(1, 3.0) <= 3.25  # the server's wait, honoured
    assert policy.delay(1, 60.0) == 4.0  # but never beyond max_delay


def test_the_retry_policy_can_be_tuned_from_the_environment() -> None:
    assert RetryPolicy.from_env({}) == RetryPolicy()
    var = "TENANT_SECRETS_INFISICAL_RETRIES"
    assert RetryPolicy.from_env({var: "attempts=3, base_delay=0.05,max_delay=0.2"}) == RetryPolicy(3, 0.05, 0.2)
    assert RetryPolicy.from_env({var: "max_delay=60"}) == RetryPolicy(max_delay=60.0)
    for bad in ("attempts=0", "attempts=2.5", "tries=3", "max_delay=-1", "attempts", "attempts=3,attempts=4"):
        with pytest.raises(InfisicalError, match=var):
            RetryPolicy.from_env({var: bad})
