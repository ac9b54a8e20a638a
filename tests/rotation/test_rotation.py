"""Rotation policies (issue 15): the file's fields, status from store records, bump, notifications."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tenant_secrets.rotation import bump, notify
from tenant_secrets.rotation.last_written import DATABASE, INFISICAL, MasterKeyRecord, Record, Records
from tenant_secrets.rotation.master_key import add_version
from tenant_secrets.rotation.policy import master_key_period, policies
from tenant_secrets.rotation.status import evaluate, render
from tenant_secrets.tenantctl.main import main
from tenant_secrets.tenants_file.loader import parse_tenants

TENANTS = """\
version: 1
defaults:
  storage: both
  environments: [dev, prod]
  rotate_every: 90d                      # every tenant's generated secrets
  secrets:
    WEBHOOK_SIGNING_SECRET: {generate: {bytes: 32, encoding: hex}}
platform:
  hono-api:
    rotate_every: 30d
    secrets:
      BETTER_AUTH_SECRET: {generate: {bytes: 32}, rotation: "2026-Q4", rotate_every: 90d}
      SESSION_SALT: {generate: {bytes: 16}}
      RESEND_API_KEY: {from: env, var: RESEND_API_KEY, expires: 2027-01-01}
tenants:
  - subdomain: codewiser
    secrets:
      STRIPE_SECRET_KEY: {from: config, review_by: 2026-12-01, expires: 2027-03-01}
      API_TOKEN: {generate: {bytes: 32}, rotation: "4", rotate_every: 7d}   # weekly
  - subdomain: acmecorp
    storage: database
"""
NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


LOCAL = frozenset({"127.0.0.1"})  # the receiver runs on this machine: allowed by name (webhookAllowHosts)


def NONE(_key: str) -> str | None:  # a stack config with nothing set
    return None


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def test_periods_and_dates_are_checked_at_their_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = TENANTS.replace("rotate_every: 7d", "rotate_every: 7 days").replace(
        "expires: 2027-01-01", "expires: 2027-02-30"
    )
    (tmp_path / "tenants.yaml").write_text(bad)
    assert main(["validate", str(tmp_path / "tenants.yaml")]) == 1
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"{tmp_path}/tenants.yaml:14:65: platform.hono-api.secrets.RESEND_API_KEY.expires: '2027-02-30' is not a date. "
        "Write it as YYYY-MM-DD, e.g. 2027-03-01",
        f"{tmp_path}/tenants.yaml:19:71: tenants[0].secrets.API_TOKEN.rotate_every: '7 days' is not a period. "
        "Write a number of days from 1 to 3650, e.g. 90d",
    ]


def test_a_secrets_own_period_wins_then_its_folder_or_the_defaults() -> None:
    found = {(p.owner, p.key): p for p in policies(parse_tenants(TENANTS, "tenants.yaml"), "prod")}
    assert found["hono-api", "BETTER_AUTH_SECRET"].period_days == 90
    assert found["hono-api", "SESSION_SALT"].period_days == 30
    assert found["codewiser", "API_TOKEN"].period_days == 7
    assert found["acmecorp", "WEBHOOK_SIGNING_SECRET"].period_days == 90
    assert found["acmecorp", "WEBHOOK_SIGNING_SECRET"].stores == {"database"}
    stripe = found["codewiser", "STRIPE_SECRET_KEY"]
    assert (stripe.kind, stripe.due_date) == ("review", date(2026, 12, 1))  # the earlier date
    assert ("hono-api", "RESEND_API_KEY") in found
    assert ("acmecorp", "STRIPE_SECRET_KEY") not in found


def test_the_master_key_period_is_90_days_on_prod_unless_the_stack_says() -> None:
    assert master_key_period(NONE, "prod") == 90
    assert master_key_period(NONE, "dev") is None
    assert master_key_period({"masterKeyRotateEvery": "30d"}.get, "dev") == 30
    assert master_key_period({"masterKeyRotateEvery": "off"}.get, "prod") is None
    with pytest.raises(ValueError, match="masterKeyRotateEvery: '3 months' is not a period"):
        master_key_period({"masterKeyRotateEvery": "3 months"}.get, "prod")


def records(**extra: Record) -> Records:
    secrets = {
        (INFISICAL, "hono-api", "BETTER_AUTH_SECRET"): Record(at("2026-06-01"), 3),
        (INFISICAL, "hono-api", "SESSION_SALT"): Record(at("2026-11-20"), 1),
        (INFISICAL, "codewiser", "API_TOKEN"): Record(at("2026-11-26"), 2),
        (DATABASE, "codewiser", "API_TOKEN"): Record(at("2026-11-26"), 2),
        (INFISICAL, "codewiser", "WEBHOOK_SIGNING_SECRET"): Record(at("2026-11-01"), 1),
        (DATABASE, "codewiser", "WEBHOOK_SIGNING_SECRET"): Record(at("2026-08-01"), 1),  # the older write counts
    }
    return Records("prod", secrets, MasterKeyRecord(1, at("2026-08-15"), "test"))


def test_status_dates_each_policy_from_the_stores_and_exits_1_when_something_is_overdue() -> None:
    report = evaluate(policies(parse_tenants(TENANTS, "t"), "prod"), records(), 90, NOW, stack="prod")
    state = {(r.owner, r.key): (r.state, r.due) for r in report.rows}
    assert state["hono-api", "BETTER_AUTH_SECRET"] == ("overdue", "2026-08-30")
    assert state["hono-api", "SESSION_SALT"] == ("ok", "2026-12-20")
    assert state["codewiser", "API_TOKEN"] == ("due-soon", "2026-12-03")
    assert state["codewiser", "WEBHOOK_SIGNING_SECRET"] == ("overdue", "2026-10-30")
    assert state["acmecorp", "WEBHOOK_SIGNING_SECRET"] == ("unwritten", None)
    assert state["codewiser", "STRIPE_SECRET_KEY"] == ("due-soon", "2026-12-01")
    assert state["hono-api", "RESEND_API_KEY"] == ("ok", "2027-01-01")
    assert state["(stack)", "master key"] == ("overdue", "2026-11-13")
    assert report.exit_status == 1
    text = render(report, "text")
    assert text.splitlines()[0].startswith("overdue")
    assert "hono-api/BETTER_AUTH_SECRET: last written 2026-06-01T00:00:00+00:00, due 2026-08-30" in text
    rows = json.loads(render(report, "json"))["rows"]
    assert {r["state"] for r in rows} == {"overdue", "due-soon", "ok", "unwritten"}
    assert "| overdue | `hono-api` | `BETTER_AUTH_SECRET` |" in render(report, "markdown")


def test_nothing_overdue_exits_0() -> None:
    tenants = parse_tenants(TENANTS, "t")
    report = evaluate(policies(tenants, "prod"), records(), None, at("2026-07-01"), stack="prod")
    assert report.exit_status == 0


def test_bump_moves_the_due_markers_and_keeps_comments_and_layout() -> None:
    tenants = parse_tenants(TENANTS, "tenants.yaml")
    every = policies(tenants, "prod")
    due = {("hono-api", "BETTER_AUTH_SECRET"), ("codewiser", "API_TOKEN")}
    bumps = bump.plan_bump(bump.choose(every, due=due, tenants=()), every, date(2026, 11, 29))
    text = bump.rewrite(TENANTS, bumps)
    assert 'BETTER_AUTH_SECRET: {generate: {bytes: 32}, rotation: "2026-11-29", rotate_every: 90d}' in text
    assert 'API_TOKEN: {generate: {bytes: 32}, rotation: "5", rotate_every: 7d}   # weekly' in text
    changed = [(a, b) for a, b in zip(TENANTS.splitlines(), text.splitlines(), strict=True) if a != b]
    assert len(changed) == 2
    assert bump.describe(bumps)[0].startswith(
        "platform.hono-api.secrets.BETTER_AUTH_SECRET: rotation '2026-Q4' -> '2026-11-29'"
    )


def test_bump_of_a_defaults_secret_for_some_tenants_gives_them_their_own_marker() -> None:
    tenants = parse_tenants(TENANTS, "tenants.yaml")
    every = policies(tenants, "prod")
    chosen = bump.choose(every, due={("codewiser", "WEBHOOK_SIGNING_SECRET")}, tenants=())
    text = bump.rewrite(TENANTS, bump.plan_bump(chosen, every, date(2026, 11, 29)))
    after = parse_tenants(text, "t")
    codewiser = after.document.tenants[0].secrets["WEBHOOK_SIGNING_SECRET"]
    assert codewiser.rotation == "2"  # type: ignore[union-attr]
    assert "WEBHOOK_SIGNING_SECRET: {generate: {bytes: 32, encoding: hex}}\n" in text  # the defaults' stays
    assert "WEBHOOK_SIGNING_SECRET" not in after.document.tenants[1].secrets
    both = bump.choose(
        every, due={("codewiser", "WEBHOOK_SIGNING_SECRET"), ("acmecorp", "WEBHOOK_SIGNING_SECRET")}, tenants=()
    )
    text = bump.rewrite(TENANTS, bump.plan_bump(both, every, date(2026, 11, 29)))
    assert 'WEBHOOK_SIGNING_SECRET: {generate: {bytes: 32, encoding: hex}, rotation: "2"}' in text


def test_next_marker() -> None:
    today = date(2026, 11, 29)
    assert [bump.next_marker(m, today) for m in ("1", "09", "2026-Q4", "2026-11-29", "2026-11-29.2")] == [
        "2",
        "10",
        "2026-11-29",
        "2026-11-29.2",
        "2026-11-29.3",
    ]


def test_bump_names_an_unknown_tenant() -> None:
    every = policies(parse_tenants(TENANTS, "t"), "prod")
    with pytest.raises(bump.BumpError, match="no generated secret with a rotation period for: nobody"):
        bump.choose(every, due=None, tenants=["nobody"])


def test_master_key_goes_to_pulumi_on_stdin_never_on_a_command_line() -> None:
    calls: list[tuple[list[str], str | None]] = []

    def run(command: list[str], stdin: str | None) -> Any:
        calls.append((command, stdin))
        return subprocess.CompletedProcess(command, 0, "", "")

    add_version("prod", 3, run=run)
    (set_key, key), (set_active, nothing) = calls
    assert set_key[:6] == ["pulumi", "config", "set", "--secret", "--path", "tenant-secrets:masterKeys.v3"]
    assert key is not None and len(bytes.fromhex(key)) == 32
    assert all(key not in part for part in set_key + set_active)
    assert set_active[3:5] == ["tenant-secrets:activeKeyVersion", "3"] and nothing is None


# --- notifications -----------------------------------------------------------------------------------


def test_changes_between_two_records_name_tenant_key_and_new_version() -> None:
    before = records()
    after_secrets = dict(before.secrets)
    after_secrets[INFISICAL, "codewiser", "API_TOKEN"] = Record(at("2026-11-29"), 3)
    after_secrets[DATABASE, "codewiser", "API_TOKEN"] = Record(at("2026-11-29"), 3)
    del after_secrets[INFISICAL, "hono-api", "SESSION_SALT"]
    after = Records("prod", after_secrets, MasterKeyRecord(2, at("2026-11-29"), "test"))
    events = notify.changes(Records.from_json(before.to_json()), after)
    assert events == [
        notify.Event("codewiser", "API_TOKEN", "changed", ("database", "infisical"), 3),
        notify.Event("hono-api", "SESSION_SALT", "deleted", ("infisical",), None),
        notify.Event("(stack)", "master key", "master-key-rotated", (), 2),
    ]
    assert notify.changes(after, after) == []


class Receiver(BaseHTTPRequestHandler):
    """A loopback webhook: answers the statuses queued, then 200; records each request."""

    statuses: ClassVar[list[int]] = []
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        status = type(self).statuses.pop(0) if type(self).statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[Receiver]]]:
    handler = type("Handler", (Receiver,), {"statuses": [], "received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/B000/not-a-real-path", handler
    server.shutdown()
    server.server_close()


def test_a_notification_arrives_signed_after_retries(
    receiver: tuple[str, type[Receiver]], caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = receiver
    handler.statuses = [503, 502]
    events = [notify.Event("codewiser", "API_TOKEN", "changed", ("database", "infisical"), 3)]
    body = notify.payload("prod", "prod", events)
    delivery = notify.deliver(notify.Webhook(url, "test-signing-key-not-secret", LOCAL), body, backoff=0)
    assert delivery.delivered and delivery.attempts == 3
    headers, raw = handler.received[-1]
    expected = hmac.new(
        b"test-signing-key-not-secret", headers["X-Tenant-Secrets-Timestamp"].encode() + b"." + raw, hashlib.sha256
    )
    assert headers["X-Tenant-Secrets-Signature"] == f"sha256={expected.hexdigest()}"
    sent = json.loads(raw)
    assert sent["text"].startswith("tenant-secrets: stack prod (prod): 1 rotation event(s)")
    assert sent["events"] == [
        {
            "stack": "prod",
            "environment": "prod",
            "owner": "codewiser",
            "key": "API_TOKEN",
            "action": "changed",
            "stores": ["database", "infisical"],
            "version": 3,
            "due": None,
        }
    ]
    retries = [r.getMessage() for r in caplog.records if r.name == "tenant_secrets.rotation.notify"]
    assert retries == [
        "webhook attempt 1 failed (status 503); retrying",
        "webhook attempt 2 failed (status 502); retrying",
    ]
    assert not any("not-a-real-path" in r.getMessage() for r in caplog.records)


def test_a_receiver_that_is_down_is_reported_not_raised(receiver: tuple[str, type[Receiver]]) -> None:
    url, handler = receiver
    handler.statuses = [500] * 10
    delivery = notify.deliver(notify.Webhook(url, "k", LOCAL), {"text": "x"}, attempts=3, backoff=0)
    assert (delivery.delivered, delivery.attempts, len(handler.received)) == (False, 3, 3)
    assert delivery.detail == "not delivered to http://127.0.0.1 after 3 attempt(s): status 500"
    closed = notify.deliver(
        notify.Webhook("http://127.0.0.1:9/hook/secret-path", "k", LOCAL), {"text": "x"}, attempts=2, backoff=0
    )
    assert not closed.delivered and "secret-path" not in closed.detail and "after 2 attempt(s)" in closed.detail


def test_the_webhook_comes_from_the_environment_or_the_stack_and_needs_a_signing_key() -> None:
    stack = {"webhookUrl": "https://hooks.example.test/T/B/x", "webhookSigningKey": "stack-key"}.get
    hook = notify.webhook_from({}, stack)
    assert hook is not None and hook.signing_key == "stack-key" and repr(hook) == "Webhook(https://hooks.example.test)"
    env = {notify.URL_VARIABLE: "http://127.0.0.1:1/x", notify.KEY_VARIABLE: "env-key"}
    assert notify.webhook_from(env, stack) == notify.Webhook("http://127.0.0.1:1/x", "env-key")
    assert notify.webhook_from({}, NONE) is None
    with pytest.raises(notify.WebhookConfigError, match="no signing key"):
        notify.webhook_from({notify.URL_VARIABLE: "https://h.example.test/x"}, NONE)


def test_bump_due_from_status_reports_of_each_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What the scheduled workflow does: each stack's status report, then one bump without credentials."""
    (tmp_path / "tenants.yaml").write_text(TENANTS)
    report = evaluate(policies(parse_tenants(TENANTS, "t"), "prod"), records(), 90, NOW, stack="prod")
    (tmp_path / "status-prod.json").write_text(render(report, "json"))
    file = str(tmp_path / "tenants.yaml")
    assert main(["rotation", "bump", file, "--due-from", str(tmp_path / "status-prod.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == [
        "platform.hono-api.secrets.BETTER_AUTH_SECRET",
        "tenants[0].secrets.API_TOKEN",
        "tenants[0].secrets.WEBHOOK_SIGNING_SECRET (copied from defaults.secrets.WEBHOOK_SIGNING_SECRET)",
    ]
    assert "# weekly" in (tmp_path / "tenants.yaml").read_text()
    (tmp_path / "bad.json").write_text("{}")
    assert main(["rotation", "bump", file, "--due-from", str(tmp_path / "bad.json")]) == 2
    assert capsys.readouterr().err.startswith(f"tenantctl rotation bump: --due-from {tmp_path}/bad.json: not a")


def test_a_stack_that_cannot_be_read_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no Pulumi project here: `pulumi config` fails
    assert main(["rotation", "status", "--stack", "nowhere"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tenantctl rotation status: cannot read the config of stack nowhere")


def test_validate_stack_checks_the_master_key_period_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tenants.yaml").write_text(TENANTS)
    stack = "config:\n  tenant-secrets:environment: prod\n  tenant-secrets:masterKeyRotateEvery: 3 months\n"
    (tmp_path / "Pulumi.prod.yaml").write_text(stack)
    assert main(["validate", "--stack", "prod"]) == 1
    assert (
        "Pulumi.prod.yaml:3:40: config.tenant-secrets:masterKeyRotateEvery: '3 months' is not a period. "
        "Write a number of days from 1 to 3650, e.g. 90d, or off"
    ) in capsys.readouterr().out.splitlines()
    (tmp_path / "Pulumi.prod.yaml").write_text(stack.replace("3 months", "off"))
    main(["validate", "--stack", "prod"])
    assert "masterKeyRotateEvery" not in capsys.readouterr().out


@pytest.mark.parametrize("index", [1, 2])
def test_a_shard_reports_its_own_tenants_and_the_owner_also_the_platform_and_master_key(index: int) -> None:
    from tenant_secrets.rotation import commands as rotation_cli  # noqa: PLC0415
    from tenant_secrets.stack.settings import StackSettings  # noqa: PLC0415
    from tenant_secrets.stack.shards import shard_of  # noqa: PLC0415
    from tests.stack.test_settings import load  # noqa: PLC0415

    config = {"environment": "prod", "shard": f"{index}/2"}
    settings: StackSettings = load(**config)
    stack = rotation_cli.Stack("prod-shard", settings, parse_tenants(TENANTS, "t"), config.get)
    owners = {r.owner for r in rotation_cli._report(stack, records(), NOW).rows}
    mine = {t for t in ("codewiser", "acmecorp") if shard_of(t, 2) == index}
    assert owners == mine | ({"hono-api", "(stack)"} if index == 1 else set())
