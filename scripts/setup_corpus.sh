#!/usr/bin/env bash
# Installs the recorded sources of the open corpus (docs/corpus.md, eventsep/corpus/CREDITS.md), all from
# Debian main: recorded effects and speech, drum kits, sampled instruments (~590 MB to download, ~770 MB on
# disk). scripts/setup.sh runs it: the corpus tests and the real development set need these packages.
# 0ad-data (1.3 GB, training only) has its own script, scripts/setup_0ad.sh.
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
PACKAGES="tuxpaint-stamps-default ktuberling-data lugaru-data hydrogen-drumkits hydrogen-drumkits-effects
          avldrums.lv2-soundfont timgm6mb-soundfont freepats timidity"
# shellcheck disable=SC2086
if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
        --no-install-recommends $PACKAGES >/dev/null; then
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
        --no-install-recommends $PACKAGES >/dev/null
fi
