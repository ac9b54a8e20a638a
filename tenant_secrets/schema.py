"""tenants.schema.json, generated from the model (never edited by hand)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tenant_secrets.model import TenantsDocument

SCHEMA_ID = "https://tenant-secrets.example.test/tenants.schema.json"


def json_schema() -> dict[str, Any]:
    schema = TenantsDocument.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def render() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def write(path: Path) -> bool:
    """Write the schema; True if the file changed."""
    text = render()
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True
