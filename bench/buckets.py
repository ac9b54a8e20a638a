"""Which bucket a tenant's resource is, when one resource per store holds several tenants (issue 29).

The product's own functions (`tenant_secrets/engine/buckets.py`), which the bench's designs use as they are.
"""

from __future__ import annotations

from tenant_secrets.engine.buckets import assign, bucket_count, bucket_of

__all__ = ["assign", "bucket_count", "bucket_of"]
