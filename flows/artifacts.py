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
    if summary["outputs"].get("report_html"):
        page = Path(summary["outputs"]["report_html"]).resolve()
        lines += [f"**[HTML report: spectrograms, detector curve, players]({page.as_uri()})**", ""]
    if summary.get("note"):
        lines += [f"note: {summary['note']}", ""]
    lines += [f"warning: {line}" for line in summary.get("warnings") or []] + ([""] if summary.get("warnings") else [])
    lines += [f"- {part}: [{path}](file://{Path(path).resolve()})" for part, path in summary["outputs"].items()]
    create_markdown_artifact("\n".join(lines), key=f"outputs-{key}", description="Output files")


def publish_evaluation(doc: dict, out_dir: str) -> None:
    """The evaluation's summary table (SI-SDRi mean/median, silent answers per setting) and a link to report.html."""
    def rounded(value):
        return round(value, 2) if isinstance(value, float) and math.isfinite(value) else str(value)

    rows = [{"setting": setting, "si_sdri_mean": rounded(s["si_sdri"]["mean"]),
             "si_sdri_median": rounded(s["si_sdri"]["median"]), "sdri_mean_snr_style": rounded(s["sdri"]["mean"]),
             "silent": s["silent"], "items": s["items"]} for setting, s in doc["summary"].items()]
    create_table_artifact(rows, key="evaluation-summary", description=f"Evaluation of {doc['manifest']}")
    page = (Path(out_dir) / "report.html").resolve()
    create_markdown_artifact(f"# Evaluation of `{doc['manifest']}`\n\n{len(doc['items'])} items, "
                             f"{len(rows)} settings. **[report.html]({page.as_uri()})** · "
                             f"[results.json]({(Path(out_dir) / 'results.json').resolve().as_uri()})\n\n"
                             f"{doc['note']}", key="evaluation-report", description="Evaluation report")
