"""Peak RSS and time of one report spectrogram of M minutes of 32 kHz noise: matplotlib's specgram (old) or
eventsep.report.spectrogram_db (new). Run each in its own process:

    python3 scripts/picture_memory.py old 10 ; python3 scripts/picture_memory.py new 10
"""
import resource
import sys
import time

import numpy as np

which, minutes, rate = sys.argv[1], float(sys.argv[2]), 32000
samples = np.random.default_rng(0).standard_normal(int(minutes * 60 * rate), dtype=np.float32) * 0.1
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
started = time.perf_counter()
if which == "old":
    from matplotlib import mlab

    power, _, _ = mlab.specgram(np.asarray(samples, np.float64), NFFT=1024, Fs=rate, noverlap=512)
    level = 10 * np.log10(power + 1e-20)
else:
    from eventsep.report import spectrogram_db

    level = spectrogram_db(samples)
print(f"{which} {minutes:g} min: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
      f"(audio alone {before:.0f} MB), {time.perf_counter() - started:.1f} s, {level.shape[1]} columns")
