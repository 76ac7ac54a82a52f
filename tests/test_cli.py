"""The command line: exit codes scripts can trust, one-line errors, stand-ins out of its reach."""

import subprocess
import sys

import pytest

from eventsep.audio import write_audio
from flows.cli import EXIT_BAD_INPUT, EXIT_NO_SEPARATOR, EXIT_NOT_CACHED, EXIT_OK, main


@pytest.fixture
def wav(cache_env, mixture):
    path = cache_env / "tone.wav"
    write_audio(path, mixture.samples, mixture.sample_rate, subtype="FLOAT")
    return str(path)


STANDINS = ["--local", "--encoder", "standin-encoder", "--sed", "standin-sed",
            "--separators", "standin-a,standin-b"]


def test_separate_then_refuse_locally(cache_env, wav, capsys):
    out = cache_env / "out"
    assert main(["separate", wav, "the tone", "-o", str(out), *STANDINS]) == EXIT_OK
    assert (out / "tone.target.wav").exists() and (out / "tone.events.csv").exists()
    assert main(["refuse", wav, "the tone", "--masks", "hard", "--thresholds", "0.3,0.6",
                 "--fusions", "rate,band", *STANDINS]) == EXIT_OK
    assert "4 grid points" in capsys.readouterr().out


def test_separate_writes_an_html_report_unless_told_not_to(cache_env, wav):
    out = cache_env / "out"
    assert main(["separate", wav, "the tone", "-o", str(out), *STANDINS]) == EXIT_OK
    page = (out / "tone.report.html").read_text()
    assert (out / "tone.report.png").stat().st_size > 1000 and 'src="tone.report.png"' in page
    assert "Sine wave" in page and "tone.residual.wav" in page  # the query's classes, the players
    quiet = cache_env / "quiet"
    assert main(["separate", wav, "the tone", "-o", str(quiet), "--no-report", *STANDINS]) == EXIT_OK
    assert (quiet / "tone.target.wav").exists() and not list(quiet.glob("*.report.html"))


def test_refuse_before_separate_exits_4(cache_env, wav, capsys):
    assert main(["refuse", wav, "the tone", *STANDINS]) == EXIT_NOT_CACHED
    assert "run `eventsep separate`" in capsys.readouterr().err


@pytest.mark.parametrize("make_input, problem", [
    (lambda d: d / "missing.wav", "no such file"),
    (lambda d: d, "directory"),
    (lambda d: (d / "text.wav").write_text("not audio") and d / "text.wav", "not an audio file"),
])
def test_bad_input_exits_2_with_one_line(cache_env, capsys, make_input, problem):
    path = make_input(cache_env)
    assert main(["separate", str(path), "dog", "-o", str(cache_env / "o"), *STANDINS]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and problem in err and str(path.name) in err
    assert not (cache_env / "o").exists()


def test_bad_threshold_exits_2(cache_env, wav, capsys):
    assert main(["separate", wav, "x", "--threshold", "1.5", *STANDINS]) == EXIT_BAD_INPUT
    assert "threshold" in capsys.readouterr().err


def test_span_outside_the_recording_exits_2(cache_env, wav, capsys):
    assert main(["separate", wav, "x", "--spans", "2-40", *STANDINS]) == EXIT_BAD_INPUT
    assert "outside the recording" in capsys.readouterr().err


def test_standins_are_not_reachable_from_the_command_line(cache_env, wav):
    """A fresh process (no test registrations) knows no stand-in separator."""
    done = subprocess.run([sys.executable, "-m", "flows.cli", "separate", wav, "the tone", "--local",
                           "--encoder", "standin-encoder"], capture_output=True, text=True)
    assert done.returncode == EXIT_BAD_INPUT and "standin-encoder" in done.stderr
    done = subprocess.run([sys.executable, "-c",
                           "from eventsep import backends; print(backends.names('separator'))"],
                          capture_output=True, text=True)
    assert "standin" not in done.stdout


def test_no_separator_exits_3_and_still_prints_the_events(cache_env, wav, capsys):
    args = ["separate", wav, "the tone", "--local", "--encoder", "standin-encoder", "--sed", "standin-sed",
            "--separators", "nonexistent", "--mask", "hard"]
    assert main(args) == EXIT_NO_SEPARATOR
    captured = capsys.readouterr()
    assert "no separator is available" in captured.err and "nonexistent" in captured.err
    assert "event" in captured.out


def test_missing_weights_name_the_file_the_folder_and_the_command(cache_env, capsys, monkeypatch):
    monkeypatch.setenv("EVENTSEP_MODELS", str(cache_env / "models"))
    assert main(["models", "verify", "audiosep-base"]) == EXIT_OK  # optional: absent is not a failure
    out = capsys.readouterr().out
    assert out.startswith("absent")
    assert "audiosep_base_4M_steps.ckpt" in out and str(cache_env / "models") in out
    assert "eventsep models pull audiosep-base" in out


def test_detect_prints_the_event_table_of_named_classes(cache_env, tmp_path, capsys):
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "accordion_and_speech.flac"
    out = tmp_path / "events.json"
    assert main(["detect", str(example), "--classes", "Speech", "--threshold", "0.3", "-o", str(out)]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "onset,offset,label,peak" and all(",Speech," in line for line in lines[1:])
    import json

    events = json.loads(out.read_text())
    assert events and events[0]["onset"] < 1.0  # the male voice speaks from the start


def test_models_convert_needs_confirmation_then_the_loader_reads_the_safetensors_copy(cache_env, capsys,
                                                                                        monkeypatch):
    """A Lightning container with a non-tensor object that weights_only=True refuses: the loader names
    `eventsep models convert`; convert refuses without confirmation, writes safetensors with --yes, and
    from then on the loader reads that copy (made from this very file)."""
    import pathlib

    import torch

    from eventsep import pretrained

    monkeypatch.setenv("EVENTSEP_MODELS", str(cache_env / "models"))
    path = pretrained.path_of("flowsep-vae")
    path.parent.mkdir(parents=True)
    tied = torch.randn(4, 3)
    torch.save({"state_dict": {"encoder.a": tied, "decoder.b": tied, "scale": torch.tensor(2.0)},
                "hyper_parameters": {"log_dir": pathlib.PurePosixPath("/somewhere")}}, path)
    with pytest.raises(pretrained.StrictLoadError, match="eventsep models convert flowsep-vae"):
        pretrained.checkpoint_tensors(path)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["models", "convert", "flowsep-vae"]) == EXIT_BAD_INPUT
    assert "--yes" in capsys.readouterr().err
    assert not pretrained.converted_path(path).exists()
    assert main(["models", "convert", "flowsep-vae", "--yes"]) == EXIT_OK
    tensors = pretrained.checkpoint_tensors(path)
    assert set(tensors) == {"encoder.a", "decoder.b", "scale"} and torch.equal(tensors["decoder.b"], tied)
    # a different file under the same name is not silently paired with the old copy
    torch.save({"state_dict": {"encoder.a": torch.zeros(1)}}, path)
    with pytest.raises(pretrained.StrictLoadError, match="was not made from this"):
        pretrained.checkpoint_tensors(path)


@pytest.mark.parametrize("setting, named", [("learning_rat=1e-3", "learning_rat"), ("learning_rate", "FIELD=VALUE"),
                                            ("learning_rate=fast", "learning_rate")])
def test_a_bad_training_setting_exits_2_with_one_line_before_any_work(cache_env, capsys, setting, named):
    folder = cache_env / "training"
    assert main(["train", "audiosep-mini", "--local", "--minutes", "0", "--folder", str(folder),
                 "--set", setting]) == EXIT_BAD_INPUT
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and named in error
    assert not folder.exists()


def test_a_damaged_result_file_is_named_in_one_line_and_recomputed(cache_env, wav, capsys):
    import json
    from pathlib import Path

    from damage import change_meta_digit

    out = cache_env / "out"
    assert main(["separate", wav, "the tone", "-o", str(out), *STANDINS]) == EXIT_OK
    events = (out / "tone.events.csv").read_text()
    report = json.loads((out / "tone.report.json").read_text())
    from eventsep.settings import settings
    from eventsep.store import ResultStore

    path = ResultStore(settings().results_url).path(report["keys"]["mask"])
    change_meta_digit(Path(path), b"onset")
    capsys.readouterr()
    assert main(["separate", wav, "the tone", "-o", str(out), *STANDINS]) == EXIT_OK
    [line] = capsys.readouterr().err.splitlines()
    assert path in line and report["keys"]["mask"] in line and "damaged" in line
    assert (out / "tone.events.csv").read_text() == events


def test_8_khz_input_runs_with_the_default_band_fusion_and_says_the_split_moved(cache_env, capsys):
    """Telephone audio: the default split (4000 Hz) is the Nyquist frequency of 8 kHz, so `band` fusion uses
    the first separator alone, and one warning line and the report say so."""
    import json

    from conftest import tone_mixture

    rate_8k = tone_mixture(rate=8000)
    path = cache_env / "phone.wav"
    write_audio(path, rate_8k.samples, 8000)
    out = cache_env / "out"
    assert main(["separate", str(path), "the tone", "-o", str(out), *STANDINS]) == EXIT_OK
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "split_hz 4000" in warnings[0] and "8000 Hz" in warnings[0]
    report = json.loads((out / "phone.report.json").read_text())
    assert any("split_hz 4000" in line for line in report["warnings"])
    assert report["input"] == str(path)


@pytest.mark.parametrize("make_output, problem", [
    (lambda d: (d / "taken").write_text("a file") and d / "taken", "is a file"),
    (lambda d: (d / "taken").write_text("a file") and d / "taken" / "out", "lies under"),
    (lambda d: "/sys/eventsep-out", "cannot be written"),
])
def test_an_unusable_output_folder_exits_2_with_one_line_before_any_work(cache_env, wav, capsys, make_output,
                                                                         problem):
    from standins import CALLS

    output = str(make_output(cache_env))
    for command in (["separate", wav, "the tone", "-o", output], ["batch", wav, "--query", "the tone", "-o", output]):
        assert main([*command, *STANDINS]) == EXIT_BAD_INPUT
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and problem in error and "output folder" in error
    assert not CALLS  # no stage ran


def test_an_unknown_class_name_exits_2_with_one_line_before_any_work(cache_env, wav, capsys):
    from standins import CALLS

    assert main(["separate", wav, "the tone", "--classes", "Speech;Speach", "-o", str(cache_env / "o"),
                 *STANDINS]) == EXIT_BAD_INPUT
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "'Speach'" in error and "did you mean 'Speech'" in error
    assert not CALLS and not (cache_env / "o").exists()
    assert main(["detect", wav, "--classes", "Dgo", "--sed", "standin-sed"]) == EXIT_BAD_INPUT
    assert "'Dgo'" in capsys.readouterr().err and not CALLS


def test_detect_prints_a_short_table_of_the_top_classes_by_default(cache_env, capsys):
    """On a 10 s recording the calibrated YAMNet gives hundreds of classes 0.5 (issue 16: 926 rows); by default
    the table holds the --top 5 classes by peak, --all gives every class reaching θ."""
    from pathlib import Path

    example = str(Path(__file__).resolve().parents[1] / "examples" / "accordion_and_speech.flac")
    assert main(["detect", example]) == EXIT_OK
    rows = capsys.readouterr().out.splitlines()[1:]
    labels = {row.rsplit(",", 1)[0].split(",", 2)[2] for row in rows}
    assert 1 <= len(rows) <= 15 and len(labels) == 5 and '"Male speech, man speaking"' in labels
    assert main(["detect", example, "--top", "2"]) == EXIT_OK
    assert len({r.rsplit(",", 1)[0].split(",", 2)[2] for r in capsys.readouterr().out.splitlines()[1:]}) == 2
    assert main(["detect", example, "--all"]) == EXIT_OK
    assert len(capsys.readouterr().out.splitlines()) > 100


def test_a_bad_cache_max_exits_2_with_one_line_before_any_work(cache_env, wav, capsys, monkeypatch):
    from standins import CALLS

    monkeypatch.setenv("EVENTSEP_CACHE_MAX", "lots")
    assert main(["separate", wav, "the tone", "-o", str(cache_env / "o"), *STANDINS]) == EXIT_BAD_INPUT
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "EVENTSEP_CACHE_MAX='lots'" in error
    assert not CALLS and not (cache_env / "o").exists()


def test_the_cache_stays_under_its_limit_and_the_run_still_completes(cache_env, wav, monkeypatch):
    from eventsep.settings import settings
    from eventsep.store import ResultStore

    monkeypatch.setenv("EVENTSEP_CACHE_MAX", "1B")
    assert main(["separate", wav, "the tone", "-o", str(cache_env / "o"), *STANDINS]) == EXIT_OK
    assert len(ResultStore(settings().results_url).keys()) == 1  # only the last one written survives
    assert (cache_env / "o" / "tone.target.wav").exists()


def test_stereo_input_gives_stereo_outputs_that_add_up_to_each_channel(cache_env, mixture, capsys):
    import json

    import numpy as np
    import soundfile

    samples = mixture.samples
    stereo = np.stack([samples, 0.5 * samples], axis=1)  # the right channel at half the level
    path = cache_env / "stereo.wav"
    write_audio(path, stereo, mixture.sample_rate, subtype="FLOAT")
    out = cache_env / "o"
    assert main(["separate", str(path), "the tone", "-o", str(out), *STANDINS]) == EXIT_OK
    target, _ = soundfile.read(out / "stereo.target.wav", dtype="float32")
    residual, _ = soundfile.read(out / "stereo.residual.wav", dtype="float32")
    assert target.shape == stereo.shape and residual.shape == stereo.shape
    np.testing.assert_allclose(target + residual, stereo, atol=1e-5)
    assert np.abs(target[:, 0]).max() > 0.01  # not silence: the answer, channel by channel
    inner = slice(4096, -4096)
    np.testing.assert_allclose(target[inner, 1], 0.5 * target[inner, 0], atol=1e-4)
    assert "2 channels" in json.loads((out / "stereo.report.json").read_text())["channels"]


def test_the_separators_are_asked_for_the_text_the_option_names(cache_env, wav):
    import standins

    standins.ASKED.clear()
    for how in (None, "words", "class", "class+words"):
        extra = [] if how is None else ["--separator-text", how]
        assert main(["separate", wav, "the tone", "-o", str(cache_env / "out"), "--no-report", *STANDINS,
                     *extra]) == EXIT_OK
    # the query's words without filler by default and for "words" (no SEPARATOR_TEXT class here); the best
    # class's AudioSet name; both. Each text is its own cache entry: all four ran.
    assert standins.ASKED["standin-a"] == ["tone", "tone", "Sine wave", "Sine wave, tone"]
