"""Issue 13's untried idea, measured: on the speech items of a development-set manifest, the soft mask made from
Silero run on DeepFilterNet3's output (instead of on the mixture), applied to that output; SI-SDRi per item (JSON
lines) and the mean gain of each setting over dfn3 alone (docs/speech.md).

    OMP_NUM_THREADS=1 PYTHONPATH=. python3 scripts/eval_speech_mask_source.py cache/dev/real/manifest.json
"""
import json, os, sys
import numpy as np
from eventsep import backends
from eventsep.audio import load_audio, resample
from eventsep.config import MaskParams, SeparatorParams
from eventsep.mask import compute_mask, apply_gain
from eventsep.metrics import si_sdr_improvement
from eventsep.ontology import by_name

manifest = sys.argv[1]
base = os.path.dirname(manifest)
m = json.load(open(manifest)); items = m["items"] if isinstance(m, dict) else m
dfn = backends.get("separator", "dfn3"); vad = backends.get("sed", "silero")
speech = by_name("Speech").index
rows = []
for it in items:
    if it.get("kind") != "speech":
        continue
    mix = load_audio(os.path.join(base, it["mixture"])); ref = load_audio(os.path.join(base, it["reference"])).samples
    est = resample(dfn.separate(resample(mix.samples, mix.sample_rate, dfn.sample_rate), "", SeparatorParams()), dfn.sample_rate, mix.sample_rate)[:len(mix.samples)]
    out = {"id": it["id"], "remove": bool(it.get("remove", False))}
    base_target = est if not out["remove"] else mix.samples - est
    out["dfn3"] = si_sdr_improvement(base_target, ref, mix.samples)
    for source in ("mixture", "output"):
        sed = vad.detect(mix.samples if source == "mixture" else est, mix.sample_rate)
        for theta, floor in ((0.3, 0.0), (0.5, 0.0), (0.3, 0.1), (0.5, 0.1)):
            p = MaskParams(mode="soft", threshold=theta, floor=floor)
            g = compute_mask(sed.probs, sed.frame_rate, [speech], p, num_samples=len(mix.samples), sample_rate=mix.sample_rate).gain
            described = apply_gain(est, g)
            target = described if not out["remove"] else mix.samples - described
            out[f"{source} θ{theta} f{floor}"] = si_sdr_improvement(target, ref, mix.samples)
    rows.append(out); print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in out.items()}), flush=True)
keys = [k for k in rows[0] if k not in ("id", "remove")]
for k in keys:
    d = np.array([r[k] - r["dfn3"] for r in rows])
    print(f"{k:22s} mean {np.mean([r[k] for r in rows]):+.2f}  gain over dfn3 {d.mean():+.2f} median {np.median(d):+.2f}")
