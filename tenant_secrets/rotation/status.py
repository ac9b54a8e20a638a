"""`tenantctl rotation status`: each policy, dated from what the stores record; never a value.

    evaluate(policies, records, master_period, now)   one Status per policy and the master key (pure)
    render(report, fmt)                               text, markdown or json

States: `ok`; `due-soon` (due within WARN_DAYS); `overdue` (a period has passed since the value was
written, or an expiry or review date has passed); `unwritten` (no store holds the value yet: the
next `pulumi up` writes it, and the period starts then).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta

from tenant_secrets.rotation.last_written import DATABASE, INFISICAL, Records
from tenant_secrets.rotation.policy import SecretPolicy
from tenant_secrets.tenants_file.names import few

WARN_DAYS = 14
MASTER_KEY_OWNER = "(stack)"
MASTER_KEY_NAME = "master key"


@dataclass(frozen=True)
class Status:
    owner: str
    key: str
    kind: str  # rotate | expires | review | master-key
    state: str  # ok | due-soon | overdue | unwritten
    last: str | None  # when the current value was written (ISO 8601), from the stores
    due: str | None  # ISO date
    detail: str  # the policy and where it is declared, or the record's source
    marker: str | None = None
    field: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class StatusReport:
    stack: str
    environment: str
    rows: tuple[Status, ...]

    @property
    def overdue(self) -> tuple[Status, ...]:
        return tuple(r for r in self.rows if r.state == "overdue")

    @property
    def exit_status(self) -> int:
        return 1 if self.overdue else 0


def _state(due: date, today: date) -> str:
    if today > due:
        return "overdue"
    return "due-soon" if (due - today).days <= WARN_DAYS else "ok"


def _written(policy: SecretPolicy, records: Records) -> datetime | None:
    """The oldest write among the stores that hold it: at least one store holds a value that old."""
    stores = [s for s in (INFISICAL, DATABASE) if s in policy.stores]
    times = [r.at for s in stores if (r := records.secrets.get((s, policy.owner, policy.key))) and r.at]
    return min(times) if times else None


def evaluate(
    policies: Sequence[SecretPolicy], records: Records, master_period: int | None, now: datetime, *, stack: str
) -> StatusReport:
    today = now.astimezone(UTC).date()
    rows: list[Status] = []
    for policy in policies:
        written = _written(policy, records)
        if policy.period_days is not None:  # a generated secret: due a period after it was written
            detail = f"rotate every {policy.period_days}d"
            due = written.astimezone(UTC).date() + timedelta(days=policy.period_days) if written else None
        else:  # a value from elsewhere: due on its date
            due = policy.due_date
            word = "expires" if policy.kind == "expires" else "review by"
            detail = f"{word} {due.isoformat() if due else '-'}"
        rows.append(
            Status(
                owner=policy.owner,
                key=policy.key,
                kind=policy.kind,
                state=_state(due, today) if due else "unwritten",
                last=written.isoformat() if written else None,
                due=due.isoformat() if due else None,
                detail=detail,
                marker=policy.marker,
                field=policy.field,
                line=policy.position[0],
            )
        )
    master = records.master_key
    if master_period is not None:
        detail = f"rotate every {master_period}d"
        if master is None or master.at is None:
            rows.append(Status(MASTER_KEY_OWNER, MASTER_KEY_NAME, "master-key", "unwritten", None, None, detail))
        else:
            due = master.at.astimezone(UTC).date() + timedelta(days=master_period)
            version = f"; active version {master.key_version}" if master.key_version else ""
            rows.append(
                Status(
                    MASTER_KEY_OWNER,
                    MASTER_KEY_NAME,
                    "master-key",
                    _state(due, today),
                    master.at.isoformat(),
                    due.isoformat(),
                    f"{detail}{version} (from {master.source})",
                )
            )
    return StatusReport(stack, records.environment, tuple(rows))


_ORDER = {"overdue": 0, "due-soon": 1, "unwritten": 2, "ok": 3}


def _summary(report: StatusReport) -> str:
    counts = {state: sum(r.state == state for r in report.rows) for state in _ORDER}
    text = ", ".join(f"{n} {state}" for state, n in counts.items() if n) or "no policies"
    return f"stack {report.stack} ({report.environment}): {len(report.rows)} polic(ies): {text}"


def render(report: StatusReport, fmt: str) -> str:
    rows = sorted(report.rows, key=lambda r: (_ORDER[r.state], r.due or "", r.owner, r.key))
    if fmt == "json":
        body = {"stack": report.stack, "environment": report.environment, "rows": [asdict(r) for r in rows]}
        return json.dumps(body, indent=1) + "\n"
    if fmt == "markdown":
        lines = [f"### Rotation status: {_summary(report)}", ""]
        if rows:
            lines += ["| state | tenant or folder | key | last written | due | policy |", "|---|---|---|---|---|---|"]
            lines += [
                f"| {r.state} | `{r.owner}` | `{r.key}` | {r.last or '-'} | {r.due or '-'} | {r.detail} |" for r in rows
            ]
        return "\n".join(lines) + "\n"
    lines = [
        f"{r.state:<9} {r.owner}/{r.key}: last written {r.last or 'never'}, due {r.due or '-'} ({r.detail})"
        for r in rows
    ]
    lines.append(_summary(report))
    overdue = [f"{r.owner}/{r.key}" for r in report.overdue]
    if overdue:
        lines.append(f"overdue: {few(overdue)}")
    return "\n".join(lines) + "\n"
