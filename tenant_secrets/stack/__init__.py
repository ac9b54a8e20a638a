"""A stack as this project sees it: its `tenant-secrets:*` settings (`settings`), its decrypted config read
through the CLI (`config`), its stack file Pulumi.<stack>.yaml and the project's set of stacks (`files`),
shards of an environment (`shards`), and what a pull request's head may hand to a protected stack's
preview (`head_data`).

May import infisical, store, engine, secret and tenants_file.
"""
