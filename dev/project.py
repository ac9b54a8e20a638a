"""A copy of the project in another folder (an e2e test's, a benchmark's), running the repository's code."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CODE = ("components", "tenant_secrets", "provider")
"""What a copy links: the program's and the providers' code, and the provider plugin's launcher (decision 0039)."""


def lay_out(dest: Path) -> None:
    """Pulumi.yaml (the repository's virtualenv by its absolute path), __main__.py, and the code linked."""
    settings = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    settings["runtime"]["options"]["virtualenv"] = str(REPO / ".venv")
    (dest / "Pulumi.yaml").write_text(yaml.safe_dump(settings))
    shutil.copy(REPO / "__main__.py", dest / "__main__.py")
    for package in CODE:
        (dest / package).symlink_to(REPO / package)
