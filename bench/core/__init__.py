"""Benchmarks of the core without the engine: loading and validating tenants.yaml (`validate`), a pull
request's `affected` and parse at 10,000 tenants (`pull_request`), `tenantctl verify`'s check at scale
(`verify`). Each is `python -m bench.core.<name>`; figures only, never a pass or fail."""
