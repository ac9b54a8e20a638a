"""Synthetic tenants.yaml files for the engine benchmark: N tenants, 5 secrets each, storage both.

Every tenant has one secret from each config-free source the program resolves: an environment
variable (one per tenant, set by the benchmark), two generated values and two literals. `PLAN` is
the literal the "change one value" step edits, so that step changes one key of one tenant.
"""

from __future__ import annotations

import hashlib

ENVIRONMENT = "dev"
SECRETS_PER_TENANT = 5
ENV_PREFIX = "BENCH_"  # the `{from: env}` sources' variables; the stack's envAllow allows the prefix
CHANGED_TENANT = 0  # the tenant whose PLAN the "change one value" step edits


def subdomain(index: int) -> str:
    return f"tenant-{index:05d}"


def env_var(index: int) -> str:
    return f"{ENV_PREFIX}T{index:05d}_STRIPE_SECRET_KEY"


def env_value(index: int) -> str:
    return f"fake-stripe-{index:05d}-not-a-secret"


def plan_value(index: int, changed: bool, changed_tenant: int = CHANGED_TENANT) -> str:
    return "enterprise" if changed and index == changed_tenant else "pro"


def environment_variables(count: int) -> dict[str, str]:
    """The variables the `{from: env}` sources of `count` tenants read."""
    return {env_var(i): env_value(i) for i in range(count)}


def tenants_yaml(count: int, *, changed: bool = False, changed_tenant: int = CHANGED_TENANT) -> str:
    """A valid tenants.yaml of `count` tenants; `changed` edits one literal of one tenant (`changed_tenant`)."""
    lines = [
        "version: 1",
        "defaults:",
        "  storage: both",
        f"  environments: [{ENVIRONMENT}]",
        "tenants:",
    ]
    for index in range(count):
        lines += [
            f"  - subdomain: {subdomain(index)}",
            f"    name: Tenant {index}",
            "    secrets:",
            f"      STRIPE_SECRET_KEY: {{from: env, var: {env_var(index)}}}",
            "      WEBHOOK_SIGNING_SECRET: {generate: {bytes: 32, encoding: hex}}",
            '      API_TOKEN: {generate: {bytes: 32, encoding: base64url}, rotation: "1"}',
            "      SMTP_HOST: {value: smtp.example.test}",
            f"      PLAN: {{value: {plan_value(index, changed, changed_tenant)}}}",
        ]
    return "\n".join(lines) + "\n"


def stand_in_values(index: int, changed: bool) -> dict[str, str]:
    """A tenant's five values as the floors declare them: stand-ins of the sizes the real values have (the
    engine's cost depends on sizes, not content)."""
    seed = hashlib.sha256(f"floor-{index}".encode()).hexdigest()
    return {
        "API_TOKEN": seed[:43],
        "PLAN": plan_value(index, changed),
        "SMTP_HOST": "smtp.example.test",
        "STRIPE_SECRET_KEY": env_value(index),
        "WEBHOOK_SIGNING_SECRET": seed,
    }


def stand_in_fingerprints(owner: str, values: dict[str, str]) -> dict[str, str]:
    """Fingerprints of the floors' stand-in values, as long as the project's."""
    return {k: hashlib.sha256(f"{owner}\0{k}\0{v}".encode()).hexdigest()[:16] for k, v in sorted(values.items())}
