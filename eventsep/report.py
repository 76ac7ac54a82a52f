"""HTML reports with matplotlib (Agg) pictures: one per separation (`<name>.report.html`) and one per evaluation
(`report.html`). Pages are self-contained (relative links, no network) and check themselves on load.

On load a page sets `data-report-status` on <html> (and its title's first word) to "ok", or to "broken: ..."
naming the JavaScript error, image or audio file that failed; tests open the pages in headless Chromium.
"""

from __future__ import annotations

import html
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .atomic import write_bytes, write_text

DPI = 64  # thumbnails: a 6.4-inch-wide figure is 410 pixels
SPECTROGRAM_FFT = 1024
SPECTROGRAM_COLUMNS = 4000  # at most this many frames a picture: ten times its width in pixels
DYNAMIC_RANGE_DB = 80.0

# ---------------------------------------------------------------- pictures


def _figure(rows: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 1.15 * rows + 0.35), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]


def overview_png(path: str | os.PathLike, panels: list[tuple[str, np.ndarray | tuple[np.ndarray, ...]]],
                 sample_rate: int, track: dict | None = None, gain: np.ndarray | None = None,
                 threshold: float | None = None,
                 span: tuple[float | None, float | None] = (None, None)) -> Path:
    """One PNG: a spectrogram per (title, samples) panel on one colour scale (the first panel's peak), then
    the detector's probability of the followed classes with θ, the mask's gain and the wanted sound's span."""
    figure, axes = _figure(len(panels) + 1)
    first = panels[0][1]
    duration = len(first[0] if isinstance(first, tuple) else first) / sample_rate
    peak = None
    for ax, (title, samples) in zip(axes, panels):
        level = spectrogram_db(samples)
        peak = float(level.max()) if peak is None else peak
        ax.imshow(level, origin="lower", aspect="auto", cmap="magma", vmin=peak - DYNAMIC_RANGE_DB, vmax=peak,
                  extent=(0, duration, 0, sample_rate / 2000), interpolation="antialiased")
        ax.set_ylabel("kHz", fontsize=7)
        ax.set_title(title, fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
    curve = axes[-1]
    if span[0] is not None and span[1] is not None:
        curve.axvspan(span[0], span[1], color="0.85", label="wanted sound")
    if gain is not None and len(gain):
        step = max(1, len(gain) // 2000)
        times = np.arange(0, len(gain), step) / sample_rate
        curve.fill_between(times, 0, np.asarray(gain[::step]), color="tab:green", alpha=0.35, label="mask gain")
    if track is not None:
        probs = np.asarray(track["probs"])
        curve.plot(np.arange(len(probs)) / track["frame_rate"], probs, color="tab:blue", lw=1,
                   label="p(" + ", ".join(track["classes"])[:40] + ")")
    if threshold is not None:
        curve.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"θ = {threshold:g}")
    curve.set_xlim(0, duration)
    curve.set_ylim(0, 1.05)
    curve.set_xlabel("seconds", fontsize=7)
    curve.set_title("detector and mask" if gain is not None and len(gain) else "detector (no mask applied)",
                    fontsize=8, loc="left")
    curve.tick_params(labelsize=7)
    if curve.get_legend_handles_labels()[0]:
        curve.legend(fontsize=6, loc="upper right", ncols=2, framealpha=0.8)
    return write_bytes(path, png_bytes(figure))


def spectrogram_db(samples: np.ndarray | tuple[np.ndarray, ...], fft: int = SPECTROGRAM_FFT,
                   columns: int = SPECTROGRAM_COLUMNS) -> np.ndarray:
    """Power in dB, (fft // 2 + 1, frames), of Hann-windowed frames every fft/2 samples, or sparser so that
    there are at most `columns` frames: a picture of an hour costs what one of 2 minutes does (the frames are
    a strided view of the samples; only the chosen ones are windowed and transformed, in float32).

    `samples`: (n,), (n, channels) (the picture shows the channels' mean), or a tuple of such arrays of one
    shape, drawn as their sum (the mixture as target + residual) without a whole-length sum being made."""
    from .audio import RawSamples

    parts = [part if isinstance(part, RawSamples) else np.asarray(part, np.float32)
             for part in (samples if isinstance(samples, tuple) else (samples,))]
    length = len(parts[0])
    if any(part.shape != parts[0].shape for part in parts):
        raise ValueError(f"the parts of a spectrogram differ in shape: {[part.shape for part in parts]}")
    if length < fft:
        parts = [np.pad(part.read(0, length) if isinstance(part, RawSamples) else part,
                        [(0, fft - length)] + [(0, 0)] * (part.ndim - 1)) for part in parts]
    hop = max(fft // 2, -(-(max(length, fft) - fft + 1) // columns))
    # (frames, fft) or (frames, channels, fft): views, nothing copied (or the chosen frames read from a raw file)
    views = [part.frames(fft, hop) if isinstance(part, RawSamples)
             else np.lib.stride_tricks.sliding_window_view(part, fft, axis=0)[::hop] for part in parts]
    count = len(views[0])
    power = np.empty((fft // 2 + 1, count), np.float32)
    window = np.hanning(fft).astype(np.float32)
    for start in range(0, count, 512):  # blocks: the windowed copy stays small
        block = sum(view[start:start + 512] for view in views)
        if block.ndim == 3:
            block = block.mean(axis=1, dtype=np.float32)
        spectrum = np.fft.rfft(block * window, axis=1)
        power[:, start:start + 512] = (spectrum.real ** 2 + spectrum.imag ** 2).T
    return 10 * np.log10(power + 1e-20)  # digital silence draws as the floor of the scale


def png_bytes(figure) -> bytes:
    """The figure as a PNG of at most 128 colours (a third of the full-colour file's size)."""
    from PIL import Image

    figure.canvas.draw()
    rgb = Image.frombuffer("RGBA", figure.canvas.get_width_height(), figure.canvas.buffer_rgba()).convert("RGB")
    buffer = io.BytesIO()
    rgb.quantize(colors=128, method=Image.Quantize.FASTOCTREE).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


# ---------------------------------------------------------------- HTML pieces

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;color:#222;background:#fff}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}h3{font-size:1em;margin:1.2em 0 .3em}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}th,td{border:1px solid #ccc;padding:2px 6px;
text-align:left}td.n{white-space:nowrap;text-align:right;font-variant-numeric:tabular-nums}th{background:#eef}
table.sortable th{cursor:pointer}table.sortable th:after{content:" \\2195";color:#999}
.note{background:#fff6d5;border:1px solid #e5c96b;padding:.4em .7em;margin:.5em 0}
.item{border-top:1px solid #ddd;margin-top:1em}.item img{display:block;max-width:100%}
.players{display:flex;flex-wrap:wrap;gap:.5em 1.2em}.players div{font-size:12px}audio{height:32px;width:250px}
.status{color:#888;font-size:11px;margin-top:2em}
"""

# Runs first: records JavaScript errors and failed images/audio, then states the verdict once all loaded.
SELF_CHECK = """
(function(){
 var problems=[];
 window.addEventListener('error',function(e){
  var t=e.target;
  if(t&&t!==window&&(t.tagName==='IMG'||t.tagName==='AUDIO'||t.tagName==='SOURCE'))
   problems.push((t.tagName==='IMG'?'image':'audio')+' did not load: '+t.getAttribute('src'));
  else problems.push('javascript error: '+e.message);
 },true);
 function verdict(){
  var waiting=false;
  document.querySelectorAll('img').forEach(function(img){
   if(!img.complete)waiting=true;
   else if(!img.naturalWidth)problems.push('image did not load: '+img.getAttribute('src'));});
  document.querySelectorAll('audio').forEach(function(a){
   if(a.error)problems.push('audio did not load: '+a.getAttribute('src'));
   else if(a.readyState<1)waiting=true;});
  return waiting;
 }
 var tries=0;
 function settle(){
  var before=problems.length, waiting=verdict();
  if(waiting&&problems.length===before&&++tries<100){problems.length=before;setTimeout(settle,100);return;}
  if(waiting)problems.push('still loading after 10 s');
  var seen={},unique=problems.filter(function(p){return seen[p]?false:(seen[p]=true);});
  var status=unique.length?'broken: '+unique.join('; '):'ok';
  document.documentElement.setAttribute('data-report-status',status);
  document.title=(unique.length?'BROKEN ':'OK ')+document.title;
  var out=document.getElementById('self-check');if(out)out.textContent='self-check: '+status;
 }
 window.addEventListener('load',function(){setTimeout(settle,0);});
})();
"""

SORTABLE = """
document.querySelectorAll('table.sortable th').forEach(function(th){
 th.addEventListener('click',function(){
  var body=th.closest('table').tBodies[0],col=th.cellIndex,up=th.getAttribute('data-order')!=='up';
  th.setAttribute('data-order',up?'up':'down');
  var key=function(row){var c=row.cells[col],v=c.getAttribute('data-v');return v===null?c.textContent:v;};
  Array.from(body.rows).sort(function(a,b){
   var x=key(a),y=key(b),nx=parseFloat(x),ny=parseFloat(y);
   var r=(isNaN(nx)||isNaN(ny))?x.localeCompare(y):(nx===ny?0:(nx<ny?-1:1));return up?r:-r;
  }).forEach(function(row){body.appendChild(row);});
 });
});
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def number(value: Any, digits: int = 2) -> str:
    """A metric for a table cell: "-inf" for a silent answer's score, "–" where there is nothing to measure."""
    if value is None or value == "":
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}f}"


def cell(value: Any, digits: int = 2) -> str:
    if isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) or value is None:
        sort_key = "" if value is None or math.isnan(float(value)) else repr(float(value)).replace("inf", "Infinity")
        return f'<td class="n" data-v="{sort_key}">{number(value, digits)}</td>'
    return f"<td>{esc(number(value, digits) if isinstance(value, (bool, np.bool_)) else value)}</td>"


def table(columns: list[str], rows: Iterable[list[Any]], sortable: bool = False) -> str:
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return (f'<table{" class=sortable" if sortable else ""}><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def players(sources: list[tuple[str, str | None]]) -> str:
    """<audio> players for (label, relative link) pairs; a missing link is left out."""
    parts = [f'<div>{esc(name)}<br><audio controls preload="metadata" src="{esc(link)}"></audio></div>'
             for name, link in sources if link]
    return f'<div class="players">{"".join(parts)}</div>' if parts else ""


def image(link: str, alt: str) -> str:
    return f'<img src="{esc(link)}" alt="{esc(alt)}">'


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en" data-report-status="pending"><head><meta charset="utf-8">'
            f"<title>{esc(title)}</title><style>{STYLE}</style><script>{SELF_CHECK}</script></head>\n"
            f'<body>\n{body}\n<p class="status" id="self-check">self-check: pending</p>'
            f"<script>{SORTABLE}</script>\n</body></html>\n")


def link_to(target: str | os.PathLike, folder: str | os.PathLike) -> str | None:
    """A relative link from `folder` to a local file (None for URLs or files on another drive)."""
    text = str(target)
    if "://" in text:
        return None
    try:
        return Path(os.path.relpath(os.path.abspath(text), os.path.abspath(folder))).as_posix()
    except ValueError:
        return None


# ---------------------------------------------------------------- the report of one separation

def applied_gain(result) -> np.ndarray | None:
    """The mask's gain when it shaped the answer; None where it was only computed (mask_at "none"), so that a
    picture does not draw a mask the answer never had."""
    from .config import gain_applied

    return result.gain if gain_applied(result.options["mask"]) else None


def separation_report(result, folder: str | os.PathLike, stem: str, audio_path: str | None = None,
                      links_from: str | os.PathLike | None = None) -> dict[str, str]:
    """`<stem>.report.html` and its picture written into `folder` beside the outputs of `outputs.write_result`;
    returns their names. `links_from`: the folder the page will be read from, when `folder` is a staging one
    (the mixture's player links to `audio_path` relative to it)."""
    folder = Path(folder)
    picture = folder / f"{stem}.report.png"
    mixture = (result.target, result.residual)  # summed frame by frame in the picture, never as a whole
    options = result.options
    threshold = options["mask"]["threshold"] if options["mask"]["mode"] != "off" else None
    overview_png(picture, [("mixture", mixture), ("target (the answer)", result.target),
                           ("residual (the rest)", result.residual)], result.sample_rate, result.track,
                 applied_gain(result), threshold)
    query = result.mapping.get("query", "")
    notes = []
    if result.mapping.get("remove"):
        notes.append("A removal request: the target is the mixture without the described sound.")
    if result.extra.get("mask_note"):
        notes.append(result.extra["mask_note"])
    notes += [str(warning) for warning in result.extra.get("warnings") or []]
    for name, why in (result.extra.get("unavailable_separators") or {}).items():
        notes.append(f"separator {name} not used: {why}")
    classes = result.mapping.get("classes", [])
    excluded = result.mapping.get("exclude", [])
    parts = [f"<h1>EventSep: {esc(query)!s}</h1>",
             f"<p>{esc(audio_path or '')} · separators: {esc(', '.join(result.separators))} · mask "
             f"{esc(options['mask']['mode'])}" + (f" θ={threshold:g}" if threshold is not None else "")
             + f" · fusion {esc(options['fusion']['mode'])}</p>"]
    parts += [f'<p class="note">{esc(note)}</p>' for note in notes]
    parts.append(image(picture.name, "spectrograms of mixture, target and residual; detector curve and mask"))
    parts.append(players([("mixture", link_to(audio_path, links_from or folder) if audio_path else None),
                          ("target", f"{stem}.target.wav"), ("residual", f"{stem}.residual.wav")]))
    parts.append("<h2>Events</h2>")
    parts.append(table(["onset s", "offset s", "label", "peak p"],
                       [[e["onset"], e["offset"], e["label"], e["peak"]] for e in result.events])
                 if result.events else "<p>no event</p>")
    parts.append("<h2>What the query maps to</h2>")
    parts.append(table(["AudioSet class", "score", ""], [[c["name"], c["score"], ""] for c in classes]
                       + [[c["name"], c["score"], "excluded"] for c in excluded]))
    if result.track:
        parts.append(f"<p>mask follows: {esc('; '.join(result.track['classes']))}</p>")
    if result.metrics:
        parts.append("<h2>Metrics</h2><p>SDR is the SNR-style SDR of the LASS papers (rewards turning the volume "
                     "down); judge by SI-SDRi.</p>")
        parts.append(table(list(result.metrics), [list(result.metrics.values())]))
    page_path = folder / f"{stem}.report.html"
    write_text(page_path, page(f"EventSep report: {query}", "\n".join(parts)))
    return {"report_png": picture.name, "report_html": page_path.name}


# ---------------------------------------------------------------- the report of an evaluation

@dataclass
class ItemAssets:
    id: str
    picture: str | None = None  # links relative to the evaluation folder
    audio: dict[str, str] = field(default_factory=dict)


def safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:80] or "item"


def write_item_assets(folder: Path, outcome, with_audio: bool = True) -> ItemAssets:
    """The item's picture (mixture / estimate / reference spectrograms, detector curve) and, when asked,
    its audio as small Ogg Vorbis files, of the answer the report shows (`outcome.shown`: what `separate`
    answers when the evaluation scored it, else the default grid setting)."""
    from .audio import write_audio

    item, result = outcome.item, outcome.shown
    name = safe_name(item.id)
    assets = ItemAssets(item.id, picture=f"items/{name}.png")
    mask = result.options["mask"]
    threshold = mask["threshold"] if mask["mode"] != "off" else None
    overview_png(folder / assets.picture, [("mixture", outcome.mixture), (f"estimate: {outcome.shown_label}",
                                           result.target), ("reference", outcome.reference)],
                 outcome.sample_rate, result.track, applied_gain(result), threshold, (item.onset, item.offset))
    if with_audio:
        for part, samples in (("mixture", outcome.mixture), ("estimate", result.target),
                              ("reference", outcome.reference), ("residual", result.residual)):
            assets.audio[part] = f"audio/{name}.{part}.ogg"
            write_audio(folder / assets.audio[part], samples, outcome.sample_rate)
    return assets


def _interval(gain: dict) -> str:
    low, high = gain["ci95"]
    return "–" if low is None else f"[{number(low)}, {number(high)}]"


def evaluation_report(doc: dict, assets: list[ItemAssets], folder: str | os.PathLike) -> Path:
    folder = Path(folder)
    summary, default = doc["summary"], doc.get("shown", doc["default"])
    parts = ["<h1>EventSep evaluation</h1>",
             f"<p>{len(doc['items'])} items from <code>{esc(doc['manifest'])}</code>, {len(summary)} settings; "
             f"pictures and players show <b>{esc(default)}</b>.</p>", f'<p class="note">{esc(doc["note"])}</p>']
    parts.append("<h2>Summary</h2>")
    columns = ["setting", "SI-SDRi mean", "SI-SDRi median", "SDRi mean (SNR-style)", "STOI", "ESTOI",
               "outside/inside dB", "silent", "items"]
    parts.append(table(columns, [[s, v["si_sdri"]["mean"], v["si_sdri"]["median"], v["sdri"]["mean"],
                                  v["stoi"]["mean"], v["estoi"]["mean"], v["outside_db"]["median"], v["silent"],
                                  v["items"]] for s, v in summary.items()], sortable=True))
    parts.append("<p>Means over finite values, medians over all (a silent answer's SI-SDR is -inf); STOI and "
                 "ESTOI over speech items; outside/inside: the estimate's mean power outside the wanted sound's "
                 "span relative to inside it (median; lower means less sound where it is absent).</p>")
    parts.append("<h2>Gains (paired over items, bootstrap 95 % interval of the mean)</h2>")
    parts.append(table(["kind", "setting", "over", "SI-SDRi gain mean", "95 % CI", "median", "better/n",
                        "worst item", "items > 1 dB worse", "outside dB change", "95 % CI"],
                       [[g["kind"], g["setting"], g["over"], g["si_sdri"]["mean"], _interval(g["si_sdri"]),
                         g["si_sdri"]["median"], f"{g['si_sdri']['better']}/{g['si_sdri']['n']}",
                         g["si_sdri"]["worst"], g["si_sdri"]["lost_1db"], g["outside_db"]["mean"], _interval(g["outside_db"])] for g in doc["gains"]],
                       sortable=True))
    for group in ("kind", "class"):
        names = sorted({n for v in summary.values() for n in v[f"by_{group}"]})
        if names:
            parts.append(f"<h2>SI-SDRi by {group} (mean / median)</h2>")
            parts.append(table(["setting", *names], [[s, *(
                f"{number(v[f'by_{group}'][n]['mean'])} / {number(v[f'by_{group}'][n]['median'])}"
                if n in v[f"by_{group}"] else "–" for n in names)] for s, v in summary.items()], sortable=True))
    parts.append(_items_table(doc))
    rows = {(r["item"], r["setting"]): r for r in doc["rows"]}
    for item, asset in zip(doc["items"], assets):
        row = rows[item["id"], default]
        parts.append(f'<div class="item" id="{esc(safe_name(item["id"]))}"><h3>{esc(item["id"])}: '
                     f'“{esc(item["query"])}”</h3><p>{esc(item.get("kind") or "")} · {esc(item.get("class") or "")}'
                     f" · SI-SDRi {number(row['si_sdri'])} dB · SDRi {number(row['sdri'])} dB · outside/inside "
                     f"{number(row['outside_db'])} dB" + (" · <b>silent</b>" if row["silent"] else "") + "</p>")
        if asset.picture:
            parts.append(image(asset.picture, f"spectrograms and detector curve of {item['id']}"))
        parts.append(players(list(asset.audio.items())) + "</div>")
    path = folder / "report.html"
    write_text(path, page("EventSep evaluation", "\n".join(parts)))
    return path


def _items_table(doc: dict) -> str:
    """Per item: the shown setting's scores (what `separate` answers, when scored) and the SI-SDRi of every
    source at the default grid point's mask setting."""
    shown = doc.get("shown", doc["default"])
    default = next(g for g in doc["grid"] if g["setting"] == doc["default"])
    same_mask = [g["setting"] for g in doc["grid"] if g["mask_mode"] == default["mask_mode"]
                 and (g["mask_mode"] == "off" or g["threshold"] == default["threshold"])
                 and g["setting"] != shown]
    rows = {(r["item"], r["setting"]): r for r in doc["rows"]}
    body = []
    for item in doc["items"]:
        row = rows[item["id"], shown]
        body.append([item["id"], item.get("kind") or "", item.get("class") or "", item["query"], row["si_sdri"],
                     row["sdri"], row["stoi"], row["estoi"], row["outside_db"], row["silent"],
                     *(rows[item["id"], s]["si_sdri"] for s in same_mask)])
    columns = ["item", "kind", "class", "query", "SI-SDRi", "SDRi (SNR-style)", "STOI", "ESTOI",
               "outside/inside dB", "silent", *(f"SI-SDRi {s}" for s in same_mask)]
    return f"<h2>Items ({esc(shown)}; click a column to sort)</h2>" + table(columns, body, sortable=True)
