"""`ours` with buckets in the benchmark (issue 29): the design `ours-b<B>` sets the stack's `tenant-secrets:buckets`
once, at the first input, and the buckets table shows it beside the floor's rows with its requests and statements."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

from bench import report
from bench.designs import BucketedFloor, BucketedOurs, Keys, Ours, bucket_design, bucket_design_name, design_class


class RecordingStack:
    """Stands in for the Automation API's stack: records the config a design sets."""

    def __init__(self) -> None:
        self.config: dict[str, str] = {}

    def set_all_config(self, config: dict[str, auto.ConfigValue], path: bool = False) -> None:
        self.config |= {name: value.value for name, value in config.items()}

    def set_config(self, name: str, value: auto.ConfigValue, path: bool = False) -> None:
        self.config[name] = value.value


def test_the_bucket_count_is_set_at_the_first_input_and_kept_when_a_tenant_is_added(tmp_path: Path) -> None:
    design = BucketedOurs("ours-b64", tmp_path, {}, Keys())
    design.work_dir.mkdir()
    stack = RecordingStack()
    design.configure(stack)  # type: ignore[arg-type]
    assert "tenant-secrets:buckets" not in stack.config
    design.write_input(1000, changed=False)
    assert stack.config["tenant-secrets:buckets"] == "16"  # ceil(1000 / 64)
    assert stack.config["tenant-secrets:environment"] == "dev"  # and the rest of ours' configuration
    design.write_input(1001, changed=True)
    assert stack.config["tenant-secrets:buckets"] == "16"
    assert (design.work_dir / "tenants.yaml").read_text().count("subdomain:") == 1001


@pytest.mark.parametrize(
    ("item", "name", "design", "per_bucket"),
    [
        ("64-ours", "ours-b64", BucketedOurs, 64),
        ("256-ours", "ours-b256", BucketedOurs, 256),
        ("64-packed-plugin", "floor-b64-packed-plugin", BucketedFloor, 64),
        ("1", "floor-b1", BucketedFloor, 1),
    ],
)
def test_a_buckets_item_names_the_floors_or_ours_design(item: str, name: str, design: type, per_bucket: int) -> None:
    assert bucket_design_name(item) == name
    assert design_class(name) is design
    assert bucket_design(name) == per_bucket


@pytest.mark.parametrize("name", ["ours-b0", "ours-b", "ours-b64-packed", "ours-b64-plugin", "ours-bx"])
def test_ours_with_anything_but_a_count_is_no_design(name: str) -> None:
    assert bucket_design(name) is None
    assert design_class(name) is None
    assert design_class("ours") is Ours


def step(design: str, wall: float, requests: int, statements: int) -> dict[str, Any]:
    return {
        "design": design,
        "tenants": 100,
        "step": "change_one",
        "wall_s": wall,
        "cpu_s": {"engine": wall, "foreign": 0.0},
        "memory": {"peak_tree_mib": 300.0},
        "state_bytes": 4096,
        "engine_ops": {"update": 2, "same": 5},
        "infisical": {"requests": requests, "writes": 1 if requests else 0},
        "postgres": {"statements": statements, "round_trips": statements + 2, "writes": 3 if statements else 0},
    }


def test_the_buckets_table_shows_ours_beside_the_floor_with_its_requests_and_statements() -> None:
    document = {
        "steps": [step("ours-b64", 3.0, 3, 12), step("floor-b64-packed-plugin", 2.0, 0, 0), step("ours", 9, 3, 12)]
    }
    table = report.render_buckets([document])
    lines = [line for line in table.splitlines() if line.startswith("| 100 ")]
    assert lines == [
        "| 100 | 64 ours | change 1 value | 1 | 3.00 | 3.00 | 300 | 4 | 3 (1 w) | 12 / 14 (3 w) | update 2 |",
        "| 100 | 64 packed plugin | change 1 value | 1 | 2.00 | 2.00 | 300 | 4 | 0 (0 w) | 0 / 2 (0 w) | update 2 |",
    ]
