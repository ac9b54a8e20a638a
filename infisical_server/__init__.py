"""A small Infisical-API-compatible server for the demo and the tests.

It speaks the subset of Infisical's REST API that a provisioning tool uses (universal-auth login,
folders v1/v2, raw secrets v3/v4 and their batch endpoints), with Infisical's status codes and error
bodies, keeps its state in one SQLite file, and adds test-only admin endpoints under ``/__admin/``
(request counters, fault injection, settings, audit log). ``docs/infisical-server.md`` is the contract.

Start it with ``python -m infisical_server --config CONFIG.yaml --data PATH.sqlite3 --port N``;
tests use :func:`infisical_server.testing.start_server`.

Two packages: `api/` (the HTTP side: pipeline, validation, routes, rate limits, admin) over `data/` (the
SQLite file, folders, secrets, identities, audit); beside them the configuration (`config`), the wire
errors (`errors`) and the path rules (`paths`) both use, and `app`, which assembles the application.
"""
