"""Both kinds of HTML report opened in headless Chromium: no JavaScript error, every image and audio file loads,
and the page renders something (the screenshot's pixels). Chromium comes from scripts/setup.sh; without it the
test fails rather than skips."""

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from eventsep.api import make_options
from eventsep.evaluate import GridSpec, evaluate
from standins import tone_set

pytestmark = pytest.mark.slow

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--window-size=1200,2000", "--virtual-time-budget=20000"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: scripts/setup.sh installs it (apt-get install chromium)")
    return path


def open_page(page, tmp_path) -> tuple[str, np.ndarray]:
    """The page's self-check verdict (data-report-status after load) and its screenshot as RGB pixels."""
    shot = tmp_path / f"{page.stem}.png"
    shot.unlink(missing_ok=True)
    done = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                           "--dump-dom", page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    marker = 'data-report-status="'
    assert marker in done.stdout, f"no self-check in the DOM chromium dumped; stderr: {done.stderr[-2000:]}"
    status = done.stdout.split(marker, 1)[1].split('"', 1)[0]
    return status, np.asarray(Image.open(shot).convert("RGB"))


def blank(pixels: np.ndarray) -> bool:
    """Hardly anything but one colour: under 2 % of the pixels differ from the most common one."""
    packed = pixels.reshape(-1, 3).astype(np.int64) @ np.array([1 << 16, 1 << 8, 1])
    return 1 - np.bincount(packed).max() / len(packed) < 0.02


@pytest.fixture
def evaluation(cache_env, standin_options):
    (cache_env / "set").mkdir()
    manifest = tone_set(cache_env / "set")
    spec = GridSpec(separators=("standin-a", "standin-b"), fusions=("band",), masks=("off", "soft"),
                    thresholds=(0.5,))
    evaluate(manifest, cache_env / "eval", spec, make_options(standin_options))
    return cache_env / "eval"


@pytest.fixture
def separation(cache_env, standin_options, mixture):
    from eventsep.api import separate
    from eventsep.audio import write_audio
    from eventsep.outputs import write_result

    path = cache_env / "in" / "tone.wav"
    write_audio(path, mixture.samples, mixture.sample_rate)
    result = separate(str(path), "the tone", options=make_options(standin_options))
    outputs = write_result(result, cache_env / "sep", "tone", audio_path=str(path))
    return cache_env / "sep", outputs


def test_evaluation_report_loads_everything_in_chromium(evaluation, tmp_path):
    status, pixels = open_page(evaluation / "report.html", tmp_path)
    assert status == "ok"
    assert not blank(pixels)


def test_separation_report_loads_everything_in_chromium(separation, tmp_path):
    folder, outputs = separation
    status, pixels = open_page(folder / "tone.report.html", tmp_path)
    assert status == "ok"
    assert not blank(pixels)
    page = (folder / "tone.report.html").read_text()
    assert "../in/tone.wav" in page and "tone.target.wav" in page and "tone.report.png" in page


def test_a_missing_picture_or_audio_file_or_a_script_error_breaks_the_page(evaluation, separation, tmp_path):
    (evaluation / "items" / "tone1.png").unlink()
    (evaluation / "audio" / "tone0.residual.ogg").unlink()
    status, _ = open_page(evaluation / "report.html", tmp_path)
    assert "image did not load: items/tone1.png" in status and "audio did not load: audio/tone0.residual.ogg" in status
    folder, _ = separation
    page = folder / "tone.report.html"
    page.write_text(page.read_text().replace("document.querySelectorAll('table.sortable th')",
                                             "notDefined();document.querySelectorAll('table.sortable th')"))
    status, _ = open_page(page, tmp_path)
    assert status.startswith("broken: javascript error") and "notDefined" in status


def test_a_blank_render_is_caught(tmp_path):
    page = tmp_path / "blank.html"
    page.write_text('<!DOCTYPE html><html data-report-status="ok"><body></body></html>')
    status, pixels = open_page(page, tmp_path)
    assert blank(pixels)
