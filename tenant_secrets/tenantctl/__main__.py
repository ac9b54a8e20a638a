"""`python -m tenant_secrets.tenantctl`: what the `tenantctl` command runs."""

import sys

from tenant_secrets.tenantctl.main import main

sys.exit(main())
