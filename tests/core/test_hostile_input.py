"""A tenants.yaml written by an attacker in a pull request: nesting far too deep, characters a
reviewer cannot see, values megabytes long, mappings thousands wide. Each is one short issue per
problem with its line and column, never an exception (issue 19); the three files of the issue first,
then generated families around them.
"""

from __future__ import annotations

import pytest

from tenant_secrets.loader import parse_tenants
from tenant_secrets.model import Issue, TenantsFileError

HEAD = "version: 1\ndefaults:\n  storage: both\n  environments: [dev]\n"  # 4 lines


def issues(text: str) -> list[Issue]:
    with pytest.raises(TenantsFileError) as caught:
        parse_tenants(text)
    return list(caught.value.issues)


# --- size and width ---------------------------------------------------------------------------------

MEGABYTE = "x" * 1_000_000
LONG_PLACES = {
    "subdomain": "tenants:\n  - subdomain: {}\n",
    "storage": "tenants:\n  - subdomain: a1\n    storage: {}\n",
    "environment": "tenants:\n  - subdomain: a1\n    environments: [{}]\n",
    "unknown field": "tenants:\n  - subdomain: a1\n    ? {}\n    : 1\n",
    "secret key": "tenants:\n  - subdomain: a1\n    secrets:\n      ? {}\n      : {{from: config}}\n",
    "source": "tenants:\n  - subdomain: a1\n    secrets:\n      K: {{from: {}}}\n",
    "comment": "tenants: # {}\n  - subdomain: ''\n",
}


@pytest.mark.parametrize("place", sorted(LONG_PLACES))
def test_a_megabyte_long_line_is_never_printed_back(place: str) -> None:
    found = issues(HEAD + LONG_PLACES[place].format(MEGABYTE))
    assert found
    assert all(len(str(issue)) < 600 for issue in found), [len(str(i)) for i in found]
