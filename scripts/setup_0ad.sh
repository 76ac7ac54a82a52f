#!/usr/bin/env bash
# Installs 0ad-data (Debian main, a 1.3 GB download, 3.2 GB on disk) for its audio/ tree: recorded animals and
# ambience for TRAINING ONLY. No test, CI run or development set needs it; without it the corpus simply has
# no 0ad-data units. Its sounds live under /usr/share/games/0ad/public/audio (eventsep/corpus/recorded.py,
# ROOTS) once installed; label rules for them go into eventsep/data/recorded_labels.csv.
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends \
    0ad-data >/dev/null
AUDIO=/usr/share/games/0ad/public/audio
if [ ! -d "$AUDIO" ]; then
    # some releases ship the mod as public.zip: unpack only its audio/ tree beside it
    ZIP=$(find /usr/share/games/0ad -name public.zip | head -n 1)
    if [ -n "$ZIP" ]; then
        $SUDO python3 -c "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); \
z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith('audio/')])" "$ZIP" /usr/share/games/0ad/public
    fi
fi
[ -d "$AUDIO" ] && echo "0ad audio: $(find "$AUDIO" -name '*.ogg' | wc -l) files under $AUDIO" || {
    echo "0ad-data installed but no audio/ tree found under /usr/share/games/0ad" >&2; exit 1; }
