"""tenants.schema.json, generated from the model (never edited by hand): `tenantctl schema`.

Editors read it through the `# yaml-language-server: $schema=./tenants.schema.json` comment at the
top of tenants.yaml, so a typo is underlined before any command runs. It says what one field may
hold; the rules across fields (unique subdomains, ...) are the validator's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from tenant_secrets.tenants_file.model import TenantsDocument

SCHEMA_ID = "https://tenant-secrets.example.test/tenants.schema.json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"


class _ClosedMappings(GenerateJsonSchema):
    """Mappings whose keys have a pattern (secret keys, group fields) refuse any other key.

    pydantic writes such a dict as `patternProperties`, which lets a key that misses the pattern
    through unchecked; `propertyNames` + `additionalProperties` says what the validator does.
    """

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        result = super().dict_schema(schema)
        patterns = result.get("patternProperties")
        if isinstance(patterns, dict) and len(patterns) == 1:
            ((pattern, values),) = patterns.items()
            del result["patternProperties"]
            result["propertyNames"] = {**result.get("propertyNames", {}), "pattern": pattern}
            result["additionalProperties"] = values
        return result


def json_schema() -> dict[str, Any]:
    schema = TenantsDocument.model_json_schema(by_alias=True, schema_generator=_ClosedMappings)
    return {"$schema": DRAFT, "$id": SCHEMA_ID, **schema}


def render() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"


def is_current(path: Path) -> bool:
    """Whether the file at path is exactly what the model generates."""
    return path.exists() and path.read_text(encoding="utf-8") == render()


def write(path: Path) -> bool:
    """Write the schema; True if the file changed."""
    if is_current(path):
        return False
    path.write_text(render(), encoding="utf-8")
    return True
