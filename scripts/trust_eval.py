"""The numbers of docs/trust.md: a manifest evaluated with fallback "off" and "gated" (one separator, mask off and
soft θ=0.5, the detector-gated mixture baseline), into OUT/off and OUT/gated (results.json each); an optional
fourth argument is the mask floor (default 0)."""
import sys

from eventsep.evaluate import GridSpec, evaluate
from eventsep.pipeline import RunOptions

manifest, out, separator = sys.argv[1], sys.argv[2], sys.argv[3]
floor = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
spec = GridSpec(separators=(separator,), fusions=("band",), masks=("off", "soft"), thresholds=(0.5,))
for fallback in ("off", "gated"):
    options = RunOptions(separators=(separator,), fallback=fallback, mask={"floor": floor})
    evaluate(manifest, f"{out}/{fallback}", spec, options=options, report=False, log=print)
