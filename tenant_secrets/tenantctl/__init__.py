"""`tenantctl`: the command line, the top of the house. `main` parses the arguments and runs one command;
each larger command has its own module: the reviewer's plan comment (`plan_comment`; the preview read
by `plan_preview`, with `plan_moves` and `plan_rows` under it), stores against tenants.yaml (`verify`, its
pure core `drift`), tenants moved between stores (`migrate`), an Infisical environment adopted (`importer`),
the stacks a change touches (`affected`), shards changed (`reshard`), a killed run made safe (`recover`: the
run's surviving processes found in /proc, `run_processes`; the file backend's torn files repaired,
`torn_state`), the allow-listed secrets passed to a CI job (`ci_env`).

May import every other package of tenant_secrets; nothing imports it but the shell's own entry points.
"""
