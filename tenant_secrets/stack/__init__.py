"""A stack as this project sees it: its `tenant-secrets:*` settings (`settings`), its decrypted config read
through the CLI (`config`), its stack file Pulumi.<stack>.yaml and the project's set of stacks (`files`),
shards of an environment (`shards`), what a pull request's head may hand to a protected stack's
preview (`head_data`), the commit the stack last applied, its stack tag (`applied`), the other regions' applied
commits a tenant moving away waits for before it is deleted (`handover`), the marker of an unfinished reshard in
its state (`reshard_marker`), and the engine's limit on its config's size (`config_size`).

May import infisical, store, engine, secret and tenants_file.
"""
