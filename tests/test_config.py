import pytest
from pydantic import ValidationError

from eventsep.config import FusionParams, MaskParams, ParamError, SeparatorParams, one_line, parse_span


@pytest.mark.parametrize("text, span", [("2-4.5", (2.0, 4.5)), ("2.0–4.5", (2.0, 4.5)), (" 0:1 ", (0.0, 1.0))])
def test_span_parsing(text, span):
    assert parse_span(text) == span


@pytest.mark.parametrize("text", ["4-2", "a-b", "3", "-1-2"])
def test_bad_spans_are_refused(text):
    with pytest.raises(ParamError):
        parse_span(text)


def test_spans_from_one_string_are_sorted():
    assert MaskParams(spans="7-9, 2-4.5").spans == ((2.0, 4.5), (7.0, 9.0))


@pytest.mark.parametrize("params, field", [
    ({"threshold": 1.5}, "threshold"), ({"threshold": -0.1}, "threshold"), ({"fade_ms": 1}, "fade_ms"),
    ({"mode": "fuzzy"}, "mode"), ({"threshold": 0.3, "low_threshold": 0.5}, "low_threshold"),
    ({"unknown": 1}, "unknown")])
def test_mask_params_errors_are_one_readable_line(params, field):
    with pytest.raises(ValidationError) as caught:
        MaskParams(**params)
    line = one_line(caught.value)
    assert "\n" not in line and field in line


def test_a_split_at_or_above_nyquist_moves_to_it_and_says_so():
    assert FusionParams(split_hz=7999).effective_split(16000) == 7999
    assert FusionParams(split_hz=7999).rate_note(16000) is None
    assert FusionParams(split_hz=8000).effective_split(16000) == float("inf")
    assert "16000 Hz" in FusionParams(split_hz=8000).rate_note(16000)
    assert FusionParams(mode="rate", split_hz=8000).rate_note(16000) is None  # no split in `rate`


def test_spans_must_lie_inside_the_recording():
    MaskParams(spans="1-2").check_duration(2.0)
    with pytest.raises(ParamError, match="outside"):
        MaskParams(spans="1-2.5").check_duration(2.0)


def test_overlap_shorter_than_chunk():
    with pytest.raises(ValidationError):
        SeparatorParams(chunk_seconds=2, overlap_seconds=2)
