"""Synthetic tenants.yaml files for the engine benchmark: N tenants, 5 secrets each, storage both.

Every tenant has one secret from each config-free source the program resolves: an environment
variable (one per tenant, set by the benchmark), two generated values and two literals. `PLAN` is
the literal the "change one value" step edits, so that step changes one key of one tenant.
"""

from __future__ import annotations

ENVIRONMENT = "dev"
SECRETS_PER_TENANT = 5
CHANGED_TENANT = 0  # the tenant whose PLAN the "change one value" step edits


def subdomain(index: int) -> str:
    return f"tenant-{index:05d}"


def env_var(index: int) -> str:
    return f"BENCH_T{index:05d}_STRIPE_SECRET_KEY"


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
