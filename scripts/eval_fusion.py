"""SI-SDRi of mini AudioSep alone, mini FlowSep alone and the two fused, on 12 held-out 10 s corpus
mixtures (seeds 100000-100011, 0 dB, 32 kHz), with the SED mask off and on.

    python scripts/eval_fusion.py [STEPS]
"""
import os
import sys
import tempfile

import numpy as np

os.environ.setdefault("EVENTSEP_CACHE", tempfile.mkdtemp(prefix="eventsep-eval-"))
import eventsep.api as api  # noqa: E402
from eventsep.corpus import make_mixture  # noqa: E402
from eventsep.metrics import si_sdr_improvement  # noqa: E402

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
VARIANTS = {  # name: (separators, fusion, mask)
    "AudioSep alone": (["audiosep"], {}, {"mode": "off"}),
    "FlowSep alone": (["flowsep"], {}, {"mode": "off"}),
    "fused, rate α 0.5": (["audiosep", "flowsep"], {"mode": "rate", "alpha": 0.5}, {"mode": "off"}),
    "fused, band (AudioSep < 4 kHz)": (["audiosep", "flowsep"], {"mode": "band"}, {"mode": "off"}),
    "fused, band-reversed": (["audiosep", "flowsep"], {"mode": "band-reversed"}, {"mode": "off"}),
    "AudioSep alone + SED mask": (["audiosep"], {}, {}),
    "fused, band + SED mask (default)": (["audiosep", "flowsep"], {"mode": "band"}, {}),
}
rows = {name: [] for name in VARIANTS}
for seed in range(100_000, 100_012):
    m = make_mixture(seed)
    query = m.prompts[0]
    for name, (separators, fusion, mask) in VARIANTS.items():
        result = api.separate((m.mixture, m.sample_rate), query, separators=separators, fusion=fusion, mask=mask,
                              separator={"steps": STEPS})
        rows[name].append(si_sdr_improvement(result.target, m.target, m.mixture))
    print(seed, m.target_kind, "|", m.interferer_kind, query, [round(v[-1], 1) for v in rows.values()], flush=True)
print(f"\nFlowSep with {STEPS} Euler steps\n\n| variant | mean SI-SDRi dB | median |\n|---|---:|---:|")
for name, values in rows.items():
    values = np.array(values)
    finite = values[np.isfinite(values)]
    print(f"| {name} | {finite.mean():.2f} ({len(finite)} of {len(values)} finite) | {np.median(values):.2f} |")
