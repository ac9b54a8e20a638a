"""tenant-secrets' pure core: no Pulumi import anywhere below this folder.

Packages by job, imports running one way, from the top down:

    tenantctl/      the `tenantctl` command and its subcommands (plan, verify, migrate, import, ...)
    rotation/       rotation policies dated from the stores, bumps as pull requests, notifications
    reader/         reading a tenant's secret in a service (the seed's getTenantSecret, done right)
    stack/          a stack's settings, its config, its Pulumi.<stack>.yaml, shards, a pull request's data
    infisical/      Strategy A: the Infisical client (plan, transport, batching, shared listings)
    store/          Strategy B: the PostgreSQL company_secrets table
    engine/         what the Pulumi shell (components/) and the engine share: the resource contract,
                    the providers' decisions, values resolved at write time, detailed diffs
    secret/         a secret's value: sources resolved, fingerprints, the envelope, the row binding,
                    the master keyring in its key folder
    tenants_file/   tenants.yaml: its typed model, loader, validation, names, sources and schema

A package imports only from the packages listed below it (rotation may use reader and stack;
reader and stack may use infisical, store and engine; everything may use secret and tenants_file).
"""
