"""A development set made louder: every mixture and reference of MANIFEST times GAIN_DB, written as float WAV
(no clipping) into OUT with its manifest, for measuring how a separator copes with loud recordings.

    python3 scripts/louder_set.py cache/dev/real/manifest.json cache/dev/real-loud 12
"""
import json
import sys
from pathlib import Path

import soundfile

from eventsep.audio import write_audio
from eventsep.evaluate import write_manifest

if __name__ == "__main__":
    manifest, out, gain_db = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    gain = 10 ** (gain_db / 20)
    entries = json.loads(manifest.read_text())["items"]
    for entry in entries:
        for field in ("mixture", "reference"):
            samples, rate = soundfile.read(manifest.parent / entry[field], dtype="float32")
            entry[field] = f"{entry['id']}.{field}.wav"
            write_audio(out / entry[field], samples * gain, rate, subtype="FLOAT")
    write_manifest(entries, out / "manifest.json")
    print(f"wrote {len(entries)} items {gain_db:+g} dB louder and {out / 'manifest.json'}")
