"""The configuration file's validation and the command line (flags or environment variables)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from ruamel.yaml import YAML

from infisical_server.config import ConfigError, parse_config
from infisical_server.testing import PACKAGE_ROOT, READY_LINE, sample_config


def test_sample_config_parses() -> None:
    config = parse_config(sample_config(path_prefix="/tenants/"))
    assert config.identities[0].path_prefix == "/tenants"
    assert config.rate_limits.secrets == 0
    assert "fake-client-secret" not in repr(config)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c["identities"][0].update(project="nope"),
            "identities[0].project: unknown project id 'nope'",
        ),
        (lambda c: c["identities"][0].update(environments=["qa"]), "are not environments of project"),
        (lambda c: c["identities"][0].update(path_prefix="/bad path"), "identities[0].path_prefix"),
        (lambda c: c["projects"][0].update(environments=["Dev"]), "is not a slug"),
        (lambda c: c.update(rate_limits={"secret": 1}), "unknown categories"),
        (lambda c: c.update(token_ttl_seconds=0), "token_ttl_seconds"),
    ],
)
def test_invalid_configs_name_the_field(change: Any, message: str) -> None:
    config = sample_config()
    change(config)
    with pytest.raises(ConfigError, match="config") as raised:
        parse_config(config, source="config.yaml")
    assert message in str(raised.value)


def test_environment_variables_replace_flags(tmp_path: Path) -> None:
    config_path = tmp_path / "config.yaml"
    YAML(typ="safe", pure=True).dump(sample_config(), config_path)
    env = {
        **os.environ,
        "INFISICAL_SERVER_CONFIG": str(config_path),
        "INFISICAL_SERVER_DATA": str(tmp_path / "data.sqlite3"),
        "INFISICAL_SERVER_HOST": "127.0.0.1",
        "INFISICAL_SERVER_PORT": "0",
    }
    log_path = tmp_path / "log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "infisical_server"],
            cwd=PACKAGE_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while not (match := READY_LINE.search(log_path.read_text())) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert match, log_path.read_text()
        assert requests.get(f"{match.group(1)}/api/status", timeout=5).json()["message"] == "Ok"
        assert log_path.read_text().count("ready on") == 1
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_bad_config_exits_2_with_the_reason(tmp_path: Path) -> None:
    config_path = tmp_path / "config.yaml"
    config_path.write_text("projects: []\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "infisical_server",
            "--config",
            str(config_path),
            "--data",
            str(tmp_path / "d.sqlite3"),
        ],
        cwd=PACKAGE_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "projects: must be a non-empty list" in result.stdout
