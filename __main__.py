"""tenant-secrets: tenants.yaml -> Infisical folders and encrypted company_secrets rows."""

import pulumi

from components.program import main

pulumi.run(main)
