"""tenant-secrets: tenants.yaml -> Infisical folders and encrypted company_secrets rows."""

from components.program import run

run()
