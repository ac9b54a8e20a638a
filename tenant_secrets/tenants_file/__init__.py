"""tenants.yaml: the one typed model of the file, read with positions, validated, and edited in place.

Owns the pydantic model (`model`, from which `schema` generates tenants.schema.json), the loader that
reports every problem with file, line and field (`loader`), the rules across the file (`validation`;
with a stack's retainOnDelete, no source reading what the run deletes: `deleted_reads`),
the names it gives (`names`), the value sources it declares (`sources`) and what a stack lets them read
(`source_policy`: envAllow, sharedFolders, the credentials no source may name), the rotation words it uses
(`periods`), and comment-preserving rewrites of it (`editing`). The bottom of the house: it imports no
other package of tenant_secrets.
"""
