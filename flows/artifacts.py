"""Prefect artifacts a person reads in the UI: the metrics table, the event table, links to the outputs,
a manifest run's table and an upload's failure."""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from pathlib import Path

from prefect.artifacts import create_markdown_artifact, create_table_artifact


def artifact_key(name: str) -> str:
    """A valid artifact key (lowercase ASCII letters, digits, dashes) for any file name: accents are
    dropped, other characters become dashes, and a name that had to change gets a short hash of itself
    so that two names never share a key."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", ascii_name)).strip("-")[:40].strip("-")
    if slug != name.lower():
        slug = f"{slug}-{hashlib.sha1(name.encode()).hexdigest()[:8]}".lstrip("-")
    return slug


def metrics_row(metrics: dict) -> dict:
    return {k: round(v, 3) if math.isfinite(v) else str(v) for k, v in metrics.items()}


def publish(summary: dict) -> None:
    key = artifact_key(Path(summary["audio"]).stem)
    if summary.get("metrics"):
        create_table_artifact([metrics_row(summary["metrics"])],
                              key=f"metrics-{key}", description=f"Metrics of {summary['audio']} against "
                                                                f"{summary.get('reference') or 'its reference'}")
    create_table_artifact(summary["events"] or [{"onset": "-", "offset": "-", "label": "no event", "peak": "-"}],
                          key=f"events-{key}", description=f"Events of {summary['query']!r} in {summary['audio']}")
    lines = [f"# {summary['query']!r} in `{summary['audio']}`", "",
             f"separators: {', '.join(summary['separators'])}", ""]
    if summary.get("answer"):
        lines += [f"answer: {summary['answer']}", ""]
    if summary["outputs"].get("report_html"):
        page = Path(summary["outputs"]["report_html"]).resolve()
        lines += [f"**[HTML report: spectrograms, detector curve, players]({page.as_uri()})**", ""]
    if summary.get("note"):
        lines += [f"note: {summary['note']}", ""]
    lines += [f"warning: {line}" for line in summary.get("warnings") or []] + ([""] if summary.get("warnings") else [])
    lines += [f"- {part}: [{path}](file://{Path(path).resolve()})" for part, path in summary["outputs"].items()]
    create_markdown_artifact("\n".join(lines), key=f"outputs-{key}", description="Output files")


def publish_failure(audio_path: str, reason: str) -> None:
    create_markdown_artifact(f"# `{audio_path}` failed\n\n{reason}\n", key=f"failed-{artifact_key(Path(audio_path).stem)}",
                             description=f"Why {audio_path} failed")


def publish_manifest(rows: list[dict], manifest: str) -> None:
    """One row per manifest item: its outputs folder or its error, and its metrics where it has a reference."""
    table = [{"audio": row["audio"], "query": row["query"], "state": "failed" if row.get("error") else "ok",
              "events": len(row.get("events") or []), "outputs": row.get("folder") or "",
              "error": row.get("error") or "", **metrics_row(row.get("metrics") or {})} for row in rows]
    create_table_artifact(table or [{"audio": "-", "state": "empty manifest"}],
                          key=f"manifest-{artifact_key(Path(manifest).stem)}", description=f"Run of {manifest}")


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
