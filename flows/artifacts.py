"""Prefect artifacts a person reads in the UI: the metrics table, the event table, links to the outputs."""

from __future__ import annotations

import math
from pathlib import Path

from prefect.artifacts import create_markdown_artifact, create_table_artifact


def publish(summary: dict) -> None:
    key = "".join(c if c.isalnum() else "-" for c in Path(summary["audio"]).stem.lower())[:40] or "run"
    if summary.get("metrics"):
        create_table_artifact([{k: round(v, 3) if math.isfinite(v) else str(v)
                                for k, v in summary["metrics"].items()}],
                              key=f"metrics-{key}", description=f"Metrics of {summary['audio']}")
    create_table_artifact(summary["events"] or [{"onset": "-", "offset": "-", "label": "no event", "peak": "-"}],
                          key=f"events-{key}", description=f"Events of {summary['query']!r} in {summary['audio']}")
    lines = [f"# {summary['query']!r} in `{summary['audio']}`", "",
             f"separators: {', '.join(summary['separators'])}", ""]
    if summary.get("note"):
        lines += [f"note: {summary['note']}", ""]
    lines += [f"warning: {line}" for line in summary.get("warnings") or []] + ([""] if summary.get("warnings") else [])
    lines += [f"- {part}: [{path}](file://{Path(path).resolve()})" for part, path in summary["outputs"].items()]
    create_markdown_artifact("\n".join(lines), key=f"outputs-{key}", description="Output files")
