"""The server's data and its rules: the SQLite file (`db`), folders (`folder_store`) and secrets
(`secret_store`) as Infisical's services treat them, secret references expanded on read (`references`),
identities, tokens and access policy (`auth`), and the audit log that names keys, never values (`audit`).

May import the top-level modules (config, errors, paths) only; the HTTP side (api) uses it, not the reverse.
"""
