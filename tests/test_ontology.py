import pytest

from eventsep.ontology import NUM_CLASSES, by_mid, by_name, classes


def test_527_classes_in_panns_order():
    table = classes()
    assert len(table) == NUM_CLASSES == 527
    assert [(c.index, c.name) for c in (table[0], table[137], table[191], table[526])] == [
        (0, "Speech"), (137, "Music"), (191, "Violin, fiddle"), (526, "Field recording")]
    assert len({c.mid for c in table}) == 527


def test_lookups():
    assert by_mid("/m/09x0r").name == "Speech"
    assert by_name("violin, FIDDLE").index == 191
    with pytest.raises(KeyError, match="no AudioSet class named"):
        by_name("tuba")
