"""Rotation: policies read from tenants.yaml (`policy`), dated from what the stores record (`last_written`,
`status`), generated secrets rotated as reviewed changes of tenants.yaml (`bump`), a new master key
version (`master_key`), webhook notifications (`notify`) to a checked public address
(`webhook_target`) and their receiver's check (`webhook_verify`), and the `tenantctl rotation` commands
(`commands`). Re-encrypting the table under a new key is the store's (`store/rotation.py`).

May import reader, stack and everything below them.
"""
