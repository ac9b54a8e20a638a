"""What the Pulumi shell (`components/`) and the engine agree on, kept free of Pulumi so it is tested fast.

Owns the resource contract, every type token and property name (`contract`); the providers' decisions,
check and diff (`reconcile`); values resolved by a provider when it writes, never stored
(`resolve_at_write`); the detailed diff reported to the engine (`property_diff`); which deletes of a
store entry the provider makes (`deletes`); and the refusal of engine channels that would log or trace
secrets (`verbose_logs`).

May import secret and tenants_file.
"""
