"""The server's HTTP side, as Infisical's API answers: the request pipeline in Infisical's order (`http`),
zod-shaped validation (`schema`), the routes (`routes_auth`, `routes_folders`, `routes_secrets`), rate
limits per category and client IP (`ratelimit`), the outermost middleware and connection control (`gate`,
`protocol`), and the test-only controls under ``/__admin/`` (`admin`).

May import the data package and the top-level modules (config, errors, paths); never app or testing.
"""
