"""Issue 26, item 11: a stack config too large for the one environment variable the engine starts the
program with is refused by `tenantctl validate --stack`, naming the largest values and the limit."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tenant_secrets.stack.config_size import LIMIT, plaintext_size, stack_file_size
from tenant_secrets.tenantctl.main import main

KEY = AESGCM(os.urandom(32))
TENANTS = "version: 1\ndefaults: {storage: infisical, environments: [dev]}\ntenants:\n" + "".join(
    f"  - subdomain: big{n}\n    secrets:\n      CERT: {{from: config}}\n" for n in range(3)
)


def secure(size: int) -> dict[str, str]:
    """A value as the passphrase provider stores it: v1:<nonce>:<AES-GCM ciphertext and tag>, base64."""
    nonce = os.urandom(12)
    ciphertext = KEY.encrypt(nonce, b"-" * size, None)
    return {"secure": f"v1:{base64.b64encode(nonce).decode()}:{base64.b64encode(ciphertext).decode()}"}


def stack_file(sizes: list[int]) -> str:
    config = {
        "tenant-secrets:environment": "dev",
        "tenant-secrets:derivationKey": secure(64),
        "tenant-secrets:secrets": {f"big{n}": {"CERT": secure(size)} for n, size in enumerate(sizes)},
    }
    return "# a stack file\n" + yaml.safe_dump({"config": config}, sort_keys=False)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "tenants.yaml").write_text(TENANTS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_passphrase_provider_s_ciphertext_gives_the_exact_plaintext_size() -> None:
    assert plaintext_size(secure(140 * 1024)["secure"]) == 140 * 1024
    assert plaintext_size(secure(0)["secure"]) == 0
    assert plaintext_size("AQICAHh" + "A" * 400) == 305  # another provider's: three quarters of the text


@pytest.mark.parametrize(
    ("sizes", "named"),
    [
        ([140 * 1024, 10, 10], "largest: secrets.big0.CERT (140 KiB), derivationKey (64 B). "),
        ([60 * 1024, 61 * 1024, 60 * 1024], "largest: secrets.big1.CERT (61 KiB), secrets.big0.CERT (60 KiB). "),
    ],
)
def test_a_config_over_the_limit_is_refused_at_the_largest_value(
    project: Path, capsys: pytest.CaptureFixture[str], sizes: list[int], named: str
) -> None:
    """One value of 140 KiB, or three of about 60 KiB: the limit is on the whole config (measured: both
    make every preview fail with `argument list too long`, tests/e2e/test_config_size.py)."""
    (project / "Pulumi.dev.yaml").write_text(stack_file(sizes))
    assert main(["validate", "--stack", "dev"]) == 1
    out = capsys.readouterr().out
    largest = sizes.index(max(sizes))
    line = 9 + 3 * largest  # the value of tenant-secrets:secrets.big<n>.CERT
    assert out.startswith(f"Pulumi.dev.yaml:{line}:")
    assert f": config.tenant-secrets:secrets.big{largest}.CERT: the config needs at least " in out
    assert " KiB in PULUMI_CONFIG, over the 128 KiB Linux allows one environment variable: every preview and up " in out
    assert "fails (`argument list too long`); " in out
    assert named in out
    assert "read with {from: infisical}), or shrink them" in out


def test_a_config_under_the_limit_passes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "Pulumi.dev.yaml").write_text(stack_file([40 * 1024, 40 * 1024, 40 * 1024]))
    assert main(["validate", "--stack", "dev"]) == 0
    assert "every value source set" in capsys.readouterr().out


def test_the_size_counts_the_engine_s_json_of_the_whole_config() -> None:
    """What the language host sets: {"tenant-secrets:secrets": "<the object as JSON text>", ...}, compact."""
    size = stack_file_size({"a:b": "x" * 10, "a:obj": {"t": {"K": secure(5)}}, "a:flag": True})
    config = '{"a:b":"xxxxxxxxxx","a:obj":"{\\"t\\":{\\"K\\":\\"xxxxx\\"}}","a:flag":"true"}'
    assert size.total == len("PULUMI_CONFIG=") + len(config) + 1
    assert size.values == ((("a:b",), 10), (("a:obj", "t", "K"), 5), (("a:flag",), 4))
    assert stack_file_size({"a:big": "x" * (LIMIT - 100)}).over is False
    assert stack_file_size({"a:big": "x" * LIMIT}).over is True
