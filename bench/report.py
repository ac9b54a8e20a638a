"""Tables (Markdown, so docs/performance.md can take them as printed) and derived figures."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from bench import ratelimits

STEP_LABELS = {
    "first_up": "first up",
    "noop_preview": "no-op preview",
    "noop_up": "no-op up",
    "change_one": "change 1 value",
    "add_tenant": "add 1 tenant",
    "rotate_key": "rotate master key",
}
DESIGN_ORDER = ("floor", "ours", "naive")
NA = "-"


def _index(steps: Iterable[Mapping[str, Any]]) -> dict[tuple[int, str, str], Mapping[str, Any]]:
    return {(s["tenants"], s["step"], s["design"]): s for s in steps}


def _keys(steps: Iterable[Mapping[str, Any]]) -> list[tuple[int, str]]:
    seen = {(s["tenants"], s["step"]) for s in steps}
    order = list(STEP_LABELS)
    return sorted(seen, key=lambda k: (k[0], order.index(k[1])))


CONTENDED = 0.25  # foreign CPU seconds per wall second above which a step is marked


def contended(figures: Mapping[str, Any]) -> bool:
    """Whether other processes on the machine took more than a quarter core on average meanwhile."""
    return bool(figures["cpu_s"]["foreign"] > CONTENDED * figures["wall_s"])


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _slope(points: list[tuple[int, float]]) -> float | None:
    """Growth exponent k in figure ~ N^k between the smallest and largest size measured."""
    usable = [(n, v) for n, v in points if v > 0]
    if len(usable) < 2:
        return None
    (n0, v0), (n1, v1) = usable[0], usable[-1]
    return round(math.log(v1 / v0) / math.log(n1 / n0), 2)


def derive(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Ratios per step, the rate-limit bounds, and growth exponents per design and step."""
    index = _index(steps)
    rows = []
    for count, step in _keys(steps):
        measured = [d for d in DESIGN_ORDER if (count, step, d) in index]
        times = {d: index[count, step, d]["wall_s"] for d in measured}
        cpu = {d: index[count, step, d]["cpu_s"]["engine"] for d in measured}
        row: dict[str, Any] = {
            "tenants": count,
            "step": step,
            "wall_s": times,
            "cpu_s": cpu,
            "contended": [d for d in measured if contended(index[count, step, d])],
            "ours_over_floor": _ratio(times.get("ours"), times.get("floor")),
            "naive_over_ours": _ratio(times.get("naive"), times.get("ours")),
            "cpu_ours_over_floor": _ratio(cpu.get("ours"), cpu.get("floor")),
            "cpu_naive_over_ours": _ratio(cpu.get("naive"), cpu.get("ours")),
            "rate_limited_s": {},
        }
        for design in ("ours", "naive"):
            if (count, step, design) in index:
                figures = index[count, step, design]
                requests = figures["infisical"]["by_endpoint"]
                row["rate_limited_s"][design] = {
                    plan: round(ratelimits.least_time(requests, plan, figures["wall_s"]), 1)
                    for plan in ratelimits.PLANS
                }
                row.setdefault("requests_by_category", {})[design] = ratelimits.by_category(requests)
        rows.append(row)
    growth: dict[str, dict[str, dict[str, float | None]]] = {}
    sizes = sorted({s["tenants"] for s in steps})
    for design in DESIGN_ORDER:
        for step in STEP_LABELS:
            present = [index[n, step, design] for n in sizes if (n, step, design) in index]
            if len(present) < 2:
                continue
            growth.setdefault(design, {})[step] = {
                "wall_s": _slope([(f["tenants"], f["wall_s"]) for f in present]),
                "cpu_s": _slope([(f["tenants"], f["cpu_s"]["engine"]) for f in present]),
                "peak_mib": _slope([(f["tenants"], f["memory"]["peak_tree_mib"]) for f in present]),
                "state_bytes": _slope([(f["tenants"], f["state_bytes"]) for f in present]),
                "infisical_requests": _slope([(f["tenants"], f["infisical"]["requests"]) for f in present]),
                "sql_statements": _slope([(f["tenants"], f["postgres"]["statements"]) for f in present]),
            }
    return {"rows": rows, "growth": growth}


def merge(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs as one (later runs win for a design, size and step measured twice)."""
    if len({tuple(d.get("engine_env") or ()) for d in documents}) > 1:
        raise ValueError("these results were measured with different engine settings: render them apart")
    steps: dict[tuple[int, str, str], dict[str, Any]] = {}
    for document in documents:
        steps.update({(s["tenants"], s["step"], s["design"]): s for s in document["steps"]})
    merged = dict(documents[-1])
    merged["steps"] = list(steps.values())
    merged["sizes"] = sorted({s["tenants"] for s in merged["steps"]})
    merged["started"] = ", ".join(d["started"] for d in documents)
    merged["elapsed_s"] = round(sum(d["elapsed_s"] for d in documents), 1)
    commits: dict[str, list[str]] = {}
    for document in documents:
        designs = "+".join(sorted({s["design"] for s in document["steps"]}))
        commits.setdefault(document["versions"]["commit"], []).append(designs)
    merged["versions"] = {
        **merged["versions"],
        "commit": "; ".join(f"{c} ({', '.join(d)})" for c, d in commits.items()),
        "uncommitted": " ".join(sorted({d["versions"].get("uncommitted", "") for d in documents} - {""})),
    }
    merged["derived"] = derive(merged["steps"])
    return merged


def _num(value: float | None, digits: int = 2) -> str:
    return NA if value is None else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" ---: " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _work(figures: Mapping[str, Any] | None) -> tuple[str, str]:
    if figures is None:
        return NA, NA
    api = figures["infisical"]
    pg = figures["postgres"]
    return (
        f"{api['requests']} ({api['writes']} w)",
        f"{pg['statements']} / {pg['round_trips']} ({pg['writes']} w)",
    )


def _ops(figures: Mapping[str, Any] | None) -> str:
    if figures is None:
        return NA
    ops = {k: v for k, v in figures["engine_ops"].items() if k != "same" and v}
    return ", ".join(f"{k} {v}" for k, v in sorted(ops.items())) or "none"


def render(document: Mapping[str, Any]) -> str:
    steps: list[dict[str, Any]] = document["steps"]
    index = _index(steps)
    derived = {(r["tenants"], r["step"]): r for r in document["derived"]["rows"]}
    keys = _keys(steps)

    def get(count: int, step: str, design: str) -> Mapping[str, Any] | None:
        return index.get((count, step, design))

    def wall(count: int, step: str, design: str) -> str:
        f = get(count, step, design)
        if f is None:
            return NA
        marks = ("*" if f.get("profiled") else "") + ("~" if contended(f) else "")
        return f"{f['wall_s']:.2f} ({f['cpu_s']['engine']:.2f}){marks}"

    def ratios(wall_ratio: float | None, cpu_ratio: float | None) -> str:
        return f"{_num(wall_ratio)} ({_num(cpu_ratio)})"

    time_rows = []
    for count, step in keys:
        row = derived[count, step]
        time_rows.append(
            [
                str(count),
                STEP_LABELS[step],
                *(wall(count, step, d) for d in DESIGN_ORDER),
                ratios(row["ours_over_floor"], row["cpu_ours_over_floor"]),
                ratios(row["naive_over_ours"], row["cpu_naive_over_ours"]),
                _ops(get(count, step, "ours")),
            ]
        )
    work_rows = []
    for count, step in keys:
        ours_api, ours_sql = _work(get(count, step, "ours"))
        naive_api, naive_sql = _work(get(count, step, "naive"))
        work_rows.append([str(count), STEP_LABELS[step], ours_api, ours_sql, naive_api, naive_sql])
    memory_rows = []
    for count, step in keys:
        cells = [str(count), STEP_LABELS[step]]
        for design in DESIGN_ORDER:
            f = get(count, step, design)
            cells.append(NA if f is None else f"{f['memory']['peak_tree_mib']:.0f}")
        for design in DESIGN_ORDER:
            f = get(count, step, design)
            cells.append(NA if f is None else f"{f['state_bytes'] / 1024:.0f}")
        memory_rows.append(cells)
    limit_rows = []
    for count, step in keys:
        limited = derived[count, step]["rate_limited_s"]
        cells = [str(count), STEP_LABELS[step]]
        for design in ("ours", "naive"):
            for plan in ratelimits.PLANS:
                cells.append(_num(limited.get(design, {}).get(plan), 1))
        limit_rows.append(cells)

    parts = [
        f"Engine benchmark, {document['started']}: {document['versions']}, "
        f"{document['secrets_per_tenant']} secrets per tenant, storage both; {document['elapsed_s']} s in all."
        + (f" Engine environment: {', '.join(document['engine_env'])}." if document.get("engine_env") else ""),
        "",
        "Wall time in s (CPU time of the engine's processes in s) per step; ratios of wall (and CPU) times;"
        " the engine's operations for ours, besides `same`. ~ marks a step during which other processes"
        " on the machine used more than a quarter core:",
        "",
        _table(
            ["N", "step", "floor", "ours", "naive", "ours/floor", "naive/ours", "ours: engine ops"],
            time_rows,
        ),
        "",
        "Work per step: Infisical requests (w = writes); PostgreSQL statements / round trips (w = writes):",
        "",
        _table(["N", "step", "ours API", "ours SQL", "naive API", "naive SQL"], work_rows),
        "",
        "Peak memory of the engine's process tree (MiB) and state file size after the step (KiB):",
        "",
        _table(
            ["N", "step", "floor MiB", "ours MiB", "naive MiB", "floor KiB", "ours KiB", "naive KiB"],
            memory_rows,
        ),
        "",
        "Least time (s) under Infisical Cloud's rate limits (the larger of the time here and the limit's wait):",
        "",
        _table(["N", "step", "ours free", "ours pro", "naive free", "naive pro"], limit_rows),
    ]
    versions = document["versions"]
    if versions.get("uncommitted"):
        parts.insert(1, f"Code under test: {versions['commit']} with uncommitted changes to {versions['uncommitted']}.")
    growth = document["derived"]["growth"]
    if growth:
        growth_rows = []
        for design in DESIGN_ORDER:
            for step, figures in growth.get(design, {}).items():
                growth_rows.append(
                    [design, STEP_LABELS[step], *(_num(figures[k]) for k in figures)],
                )
        sizes = document["sizes"]
        parts += [
            "",
            f"Growth exponent k (figure ~ N^k, from N={min(sizes)} to N={max(sizes)}; 1 = linear, 0 = flat):",
            "",
            _table(
                ["design", "step", "time", "CPU", "peak memory", "state size", "API requests", "SQL statements"],
                growth_rows,
            ),
        ]
    if any(s.get("profiled") for s in steps):
        parts += ["", "* profiled with py-spy: slower than unprofiled, not a figure to quote."]
    return "\n".join(parts)


BUCKET_PREFIXES = {"floor-b": "", "ours-b": " ours"}
"""The designs with buckets (bench/designs.py) and how their B column reads: `64`, `64 packed plugin`, `64 ours`."""


def bucket_label(design: str) -> str | None:
    """A design's B column in the buckets table (`ours-b64`: `64 ours`); None for a design without buckets."""
    for prefix, suffix in BUCKET_PREFIXES.items():
        if design.startswith(prefix):
            return design[len(prefix) :].replace("-", " ") + suffix
    return None


def render_buckets(documents: list[Mapping[str, Any]]) -> str:
    """The floor and ours with buckets (issue 29): per size, B and step, the median over every run given.

    Several documents are repeated runs: each figure is the median of that step's runs (wall and engine
    CPU in s, the peak memory of the engine's process tree, the state file), with the Infisical requests,
    SQL statements and round trips, and the engine's operations, of the last run (the floor's are 0). Empty
    when no document has a `floor-b<B>` or `ours-b<B>` design.
    """
    runs: dict[tuple[int, str, str], list[Mapping[str, Any]]] = {}
    for document in documents:
        for s in document["steps"]:
            label = bucket_label(str(s["design"]))
            if label is not None:
                runs.setdefault((s["tenants"], label, s["step"]), []).append(s)
    if not runs:
        return ""
    order = list(STEP_LABELS)

    def median(figures: list[Mapping[str, Any]], pick: Any) -> float:
        values = sorted(float(pick(f)) for f in figures)
        middle = len(values) // 2
        return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2

    rows = []

    def position(key: tuple[int, str, str]) -> tuple[int, int, str, int]:
        count, label, step = key
        return count, int(label.split()[0]), label, order.index(step)

    for (count, per_bucket, step), figures in sorted(runs.items(), key=lambda kv: position(kv[0])):
        api, sql = _work(figures[-1])
        rows.append(
            [
                str(count),
                per_bucket,
                STEP_LABELS[step],
                str(len(figures)),
                _num(median(figures, lambda f: f["wall_s"])),
                _num(median(figures, lambda f: f["cpu_s"]["engine"])),
                _num(median(figures, lambda f: f["memory"]["peak_tree_mib"]), 0),
                _num(median(figures, lambda f: f["state_bytes"]) / 1024, 0),
                api,
                sql,
                _ops(figures[-1]) if step != "noop_preview" else f"same {figures[-1]['engine_ops'].get('same', 0)}",
            ]
        )
    header = [
        "N",
        "B",
        "step",
        "runs",
        "wall s",
        "engine CPU s",
        "peak MiB",
        "state KiB",
        "API",
        "SQL stmt / rt",
        "engine ops",
    ]
    return "### The floor and ours with B tenants per resource (medians)\n\n" + _table(header, rows)
