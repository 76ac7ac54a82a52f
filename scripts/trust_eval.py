"""The numbers of docs/trust.md: a manifest evaluated with fallback "off" and "gated" (one separator, mask off and
soft θ=0.5, the detector-gated mixture baseline), into OUT/off and OUT/gated (results.json each)."""
import sys

from eventsep.evaluate import GridSpec, evaluate
from eventsep.pipeline import RunOptions

manifest, out, separator = sys.argv[1], sys.argv[2], sys.argv[3]
spec = GridSpec(separators=(separator,), fusions=("band",), masks=("off", "soft"), thresholds=(0.5,))
for fallback in ("off", "gated"):
    evaluate(manifest, f"{out}/{fallback}", spec, options=RunOptions(separators=(separator,), fallback=fallback),
             report=False, log=print)
