"""Fast unit tests of eventsep/query.py for mutation testing (docs/testing.md): the parser, the name tables,
spelling, the "contained" rules and the ranking with a stand-in encoder whose vectors are set by hand, so every
score below is worked out on paper. No model is loaded; the whole file runs in a few seconds."""

from __future__ import annotations

import hashlib
import json
import math
import os

import numpy as np
import pytest

from eventsep import query as Q
from eventsep.config import QueryParams
from eventsep.ontology import by_name

DIM = 8


def unit(i: int) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[i] = 1.0
    return vector


def mix(**parts: float) -> np.ndarray:
    """mix(e1=0.6, e2=0.8) → 0.6·e1 + 0.8·e2."""
    vector = np.zeros(DIM, dtype=np.float32)
    for name, weight in parts.items():
        vector[int(name[1:])] = weight
    return vector


DOG = by_name("Dog")
CAT = by_name("Cat")
SPEECH = by_name("Speech")  # candidates()[0]: the first of the classes that all score 0 below

# Every text not in the table is e0; the queries below have no e0 part, so those texts score 0.
TABLE = {
    "Dog": unit(1), "the sound of Dog": unit(1), "a recording of Dog": unit(1),
    "Cat": unit(2), "the sound of Cat": unit(2), "a recording of Cat": unit(4),  # Cat's row: (2·e2 + e4)/√5
    Q.descriptions()[DOG.mid]: unit(3),
    "zorblax": mix(e1=0.6, e2=0.8),
    "qux": mix(e1=0.6, e3=0.8),
    "zorblax dog": mix(e1=0.6, e2=0.8),
    "blorp dog": unit(1),
    "dog": unit(1),  # the query "dog" (and the label text "dog")
}
CAT_ROW = np.array([0, 0, 2, 0, 1, 0, 0, 0]) / math.sqrt(5)
# "zorblax": Cat's best text (its name row) 0.8·2/√5, Dog's 0.6; no description part for either (Dog's is e3)
ZORBLAX_CAT = (0.8 * 2 / math.sqrt(5)) / 1.05
ZORBLAX_DOG = 0.6 / 1.05
# "qux": Dog's name 0.6 and its description 0.8, weighted 1 : 0.05
QUX_DOG = (0.6 + 0.05 * 0.8) / 1.05


class TableEncoder:
    """Vectors from TABLE (exact texts), e0 for anything else; `scale` leaves the rows unnormalised."""

    name = "table"
    dim = DIM

    def __init__(self, identity: str = "table-1", scale: float = 1.0):
        self._identity, self.scale, self.calls = identity, scale, []

    def identity(self) -> str:
        return self._identity

    def encode(self, texts):
        self.calls.append(list(texts))
        return np.stack([TABLE.get(t, unit(0)) * self.scale for t in texts]).astype(np.float32)


@pytest.fixture(autouse=True)
def fresh_matrix_cache(monkeypatch):
    """label_matrix's in-memory cache is per process, and mutmut forks its workers from one that ran the tests."""
    monkeypatch.setattr(Q, "_matrix_cache", {})


# ---------------------------------------------------------------- parsing

def test_strip_filler_drops_requests_articles_quotes_and_trailing_politeness():
    assert Q.strip_filler("Please keep only the sound of the dog") == "dog"
    assert Q.strip_filler("  'the dog please'  ") == "dog"
    assert Q.strip_filler('"um the dog thanks"') == "dog"
    assert Q.strip_filler("the dog too") == "dog"
    assert Q.strip_filler("dog") == "dog"
    assert Q.strip_filler("") == ""
    assert Q.strip_filler('the "dog"') == "dog"  # a quote bared by the filler's removal goes too
    assert Q.strip_filler("Xylophone") == "Xylophone"  # only spaces and quotes are stripped from the ends


def test_strip_filler_turns_what_is_said_into_the_speaker_speaking():
    assert Q.strip_filler("what the teacher says") == "teacher speaking"
    assert Q.strip_filler("whatever the guide is telling us") == "guide speaking"
    # after the rewrite the filler goes on being stripped: "the" is dropped from "the teacher speaking"
    assert Q.strip_filler("keep what the pilot announces") == "pilot speaking"


@pytest.mark.parametrize("text, expected", [
    ("the   dog\n barking", (["dog barking"], [], False)),  # whitespace collapsed first
    ("no talking, only the background", (["talking"], [], True)),  # keeping what is left is removing
    ("no talking, keep the background noise", (["talking"], [], True)),
    ("remove the dog, and keep the ambience", (["dog"], [], True)),
    # after a removal, keeping the rest names the removal's remainder (six blind prompts, fresh5–15)
    ("remove the dog, keep the cat", (["dog"], [], True)),
    ("remove the rain but keep the thunder", (["thunder"], ["rain"], False)),  # "but" sets the kept sound first
    ("no dog, keep the cat", (["cat"], ["dog"], False)),  # a negator is no removal verb
    ("keep the cat, remove the dog", (["cat"], ["dog"], False)),
    # a comment after the request names no second sound
    ("kill the hi-hat, it's too loud", (["hi-hat"], [], True)),
    ("take out the chewing sounds, my guest was eating", (["chewing sounds"], [], True)),
    ("mute the trumpet, way too loud", (["trumpet"], [], True)),
    ("the birds, they are lovely", (["birds"], [], False)),
    ("keep the birds, the rain", (["birds", "rain"], [], False)),  # a list is no comment
    ("keep the guitar, lose everything else", (["guitar"], [], False)),
    ("less breathing noise pls", (["breathing noise"], [], True)),
    ("pls get rid of the hum", (["hum"], [], True)),
    ("get rid of the background music, I only want the vows", (["background music"], [], True)),
    ("mute the piano so only the vocals remain", (["piano"], [], True)),
    ("the fan buzzing, get rid", (["fan buzzing"], [], True)),
    ("hey can u take out my husband's snoring lol", (["husband's snoring"], [], True)),  # chat before the verb
    ("take the drums out, i wanna practice along", (["drums"], [], True)),
    ("so, remove the dog, keep the cat", (["dog"], [], True)),  # the request is the first clause naming a sound
    ("kid asking questions in the background, remove him", (["kid asking questions in the background"], [], True)),
    ("podcast without the host's laughing", (["host's laughing"], [], True)),
    ("not", ([], [], False)),  # a bare negator names nothing
    ("remove", ([], [], False)),
    ("and the cat", (["cat"], [], False)),  # a leading conjunction
    ("also the cat", (["cat"], [], False)),
    ("the dog, , the cat", (["dog", "cat"], [], False)),  # empty clauses skipped
    ("the dog and remove the cat", (["dog"], ["cat"], False)),  # "and" before a verb splits
    ("the dog and the cat", (["dog and the cat"], [], False)),  # otherwise the phrase stays whole
    ("please could you remove the hum", (["hum"], [], True)),
    ("CUT OUT the hum", (["hum"], [], True)),  # case-insensitive
    ("the drums, nothing else", (["drums"], [], False)),
    ("make it karaoke", (["vocals"], [], True)),
    ("take the singing out", (["singing"], [], True)),
    ("everything except the bass", (["bass"], [], True)),
])
def test_parse(text, expected):
    assert Q.parse(text) == expected


# ---------------------------------------------------------------- names, aliases, plurals

def test_normalise_lowers_joins_hyphens_keeps_apostrophes_and_drops_punctuation():
    assert Q._normalise("Hi-Hat’s  (Crash)!") == "hi hat's crash"
    assert Q._normalise("  A,B ") == "a b"
    assert Q._normalise("don't") == "don't"
    assert Q._normalise("...") == ""


def test_synonyms_of_a_display_name():
    assert Q._synonyms("Vehicle horn, car horn, honking") == [
        "vehicle horn car horn honking", "vehicle horn", "car horn", "honking"]
    assert Q._synonyms("Police car (siren)") == ["police car siren", "police car"]
    assert Q._synonyms("Bells, And whistles") == ["bells and whistles", "bells", "whistles"]
    assert Q._synonyms("Tools, etc.") == ["tools etc", "tools"]
    assert Q._synonyms("(x)") == ["x"]
    assert Q._synonyms("Dog") == ["dog"]


def test_duplicate_alias_keys_are_refused_by_name():
    with pytest.raises(ValueError) as error:
        Q._reject_duplicates([("b", 1), ("a", 2), ("b", 3), ("c", 4), ("a", 5)])
    assert str(error.value) == "eventsep/data/aliases.json repeats a, b"
    assert Q._reject_duplicates([("a", 1), ("b", 2)]) == {"a": 1, "b": 2}
    assert Q._reject_duplicates([]) == {}


@pytest.mark.parametrize("phrase, forms", [
    ("dad's", ["dad"]),
    ("puppies", ["puppies", "puppy", "puppi", "puppie"]),
    ("boxes", ["boxes", "box", "boxe"]),
    ("dogs", ["dogs", "dog"]),
    ("glass", ["glass"]),
    ("giggling", ["giggling", "giggl", "giggle"]),
    ("yelling", ["yelling", "yell", "yelle", "yel"]),
    ("adding", ["adding", "add", "adde", "ad"]),  # a three-letter stem with a doubled end
    ("boxing", ["boxing", "box", "boxe"]),  # a last word of exactly six letters
    ("bring", ["bring"]),  # five letters: not an -ing form
    ("dog barking", ["dog barking", "dog bark", "dog barke"]),
    ("a sing", ["a sing"]),
])
def test_singulars(phrase, forms):
    assert Q._singulars(phrase) == forms


def test_exact_match_and_trimmed_trailing_nouns():
    assert Q.exact_match("Dogs") == DOG
    assert Q.exact_match("the dog") is None
    assert Q.exact_match("zorblax") is None
    assert Q._exact_or_trimmed("dog") == DOG
    assert Q._exact_or_trimmed("dog sounds") == DOG
    assert Q._exact_or_trimmed("Dog Noise") == DOG
    assert Q._exact_or_trimmed("dog in the distance") == DOG
    assert Q._exact_or_trimmed("dog outside") == DOG
    assert Q._exact_or_trimmed("zorblax sounds") is None
    assert Q._exact_or_trimmed("sounds") is None


def test_speaker_words_and_aliases_reach_speech():
    assert Q.exact_match("the host") is None and Q.exact_match("host") == SPEECH
    assert Q.exact_match("toddler").name == "Child speech, kid speaking"
    assert Q.aliases()["puppy"] == "Dog"
    assert Q.candidates() is Q.candidates() and Q.candidates()[0] == SPEECH


# ---------------------------------------------------------------- spelling

def test_spelling_corrects_only_unknown_alphabetic_words_of_four_letters_or_more():
    assert Q.correct_spelling("cymbols") == "cymbals"  # ratio 0.857
    assert Q.correct_spelling("The CYMBOLS") == "the cymbals"  # normalised
    assert Q.correct_spelling("teh") == "teh"  # three letters: left alone
    assert Q.correct_spelling("hrn") == "hrn"  # three letters, though "horn" is 2·3/7 = 0.857 from it
    assert Q.correct_spelling("cymbal5") == "cymbal5"  # not alphabetic, though "cymbals" is 2·6/14 = 0.857 away
    assert Q.correct_spelling("cymbols2") == "cymbols2"  # not alphabetic
    assert Q.correct_spelling("zorblax") == "zorblax"  # nothing close enough
    assert Q.correct_spelling("vaccum") == "vaccum"  # "vacuum" only 0.83 away: under the 0.85 cutoff
    assert Q.correct_spelling("puppies") == "puppies"  # a label word's plural
    assert Q.correct_spelling("clucking") == "clucking"  # an English word


def test_spelling_of_a_four_letter_word():
    # "hrns": four letters, neither a label word nor English; "horns" (a label word) is 2·4/9 = 0.889 from it
    assert "hrns" not in Q._dictionary_words() and "hrns" not in Q._label_words()
    assert Q.correct_spelling("hrns") == "horns"


# ---------------------------------------------------------------- what a longer phrase names

def named(phrase: str) -> tuple[list[str], float]:
    indices, bonus = Q._contained(phrase)
    return sorted(c.name for c in Q.candidates() if c.index in indices), bonus


@pytest.mark.parametrize("phrase, names, bonus", [
    ("electric guitar solo", ["Electric guitar"], Q.CONTAINED_BONUS),  # the longest occurrence only
    ("the radio host", ["Speech"], Q.SPEAKER_BONUS),  # a noun before a speaker's role describes them
    ("the church sermon", ["Speech"], Q.SPEAKER_BONUS),
    ("a crying toddler", ["Crying, sobbing"], Q.SPEAKER_BONUS),  # beside a person, the sound they make
    ("the kids shrieking", ["Screaming"], Q.SPEAKER_BONUS),
    ("the guy on harmonica", ["Harmonica"], Q.SPEAKER_BONUS),  # a player on an instrument
    ("the lady on the phone", ["Female speech, woman speaking"], Q.SPEAKER_BONUS),  # a person before a preposition
    ("knocking on the door", ["Knock"], Q.CONTAINED_BONUS),  # "on" a door: not an instrument
    ("mom singing a lullaby", ["Female singing"], Q.SPEAKER_BONUS),
    ("the lullaby mom sings", ["Female singing"], Q.CONTAINED_BONUS),
    ("the ac hum", ["Air conditioning"], Q.SPEAKER_BONUS),  # the source's class, not Hum, and it decides
    ("the piano teacher playing", ["Piano"], Q.SPEAKER_BONUS),  # an instrument played, not a speaker described
    ("dog and cat", ["Cat", "Dog"], Q.CONTAINED_BONUS),
    ("the woman", ["Female speech, woman speaking"], Q.CONTAINED_BONUS),  # a person alone: their speech
    ("the host", ["Speech"], Q.SPEAKER_BONUS),
    ("the music", [], Q.CONTAINED_BONUS),  # generic classes are never raised
    ("electric guitar", ["Guitar"], Q.CONTAINED_BONUS),  # inside the phrase only: the whole is rank's exact match
    ("the piano on stage", ["Piano"], Q.CONTAINED_BONUS),  # nothing played "on": the words before the preposition
    ("a noise from the dog", ["Dog"], Q.CONTAINED_BONUS),  # nothing named before it: the whole phrase
    ("the dog cat", ["Cat", "Dog"], Q.CONTAINED_BONUS),  # a sound right after another is kept
    ("a buzzing buzz", ["Buzz"], Q.CONTAINED_BONUS),  # a quality word after its own class is kept
    ("dog and voices", ["Dog"], Q.CONTAINED_BONUS),  # "voices" (generic Speech, no speaker's role): no speaker bonus
    ("zorblax", [], Q.CONTAINED_BONUS),
    ("", [], Q.CONTAINED_BONUS),
    # a person busy at something other than speaking before a preposition: the sound named after it
    ("a guy cutting a tree with a chainsaw", ["Chainsaw"], Q.SPEAKER_BONUS),
    ("my little girl talking to the camera", ["Child speech, kid speaking"], Q.SPEAKER_BONUS),  # speaking: her voice
    ("the man laughing at the joke", ["Laughter"], Q.SPEAKER_BONUS),  # the -ing word names a sound itself
    ("the motorcycle revving", ["Motorcycle"], Q.SPEAKER_BONUS),  # revving: how the source sounds
    ("my little sister giggling", ["Giggle"], Q.SPEAKER_BONUS),
    ("the rhodes solo", ["Electric piano"], Q.CONTAINED_BONUS),
    ("the witness on the stand", ["Speech"], Q.SPEAKER_BONUS),  # a court-room role speaks  # a person in two words hides no sound in one
    ("my baby brother", ["Child speech, kid speaking"], Q.CONTAINED_BONUS),  # "baby" inside the person: no crying
    ("lose all the breaths between my vocal lines", ["Breathing"], Q.CONTAINED_BONUS),  # what comes before "between"
    # a person speaking: what follows the verb is what is said, not a sound (fresh14)
    ("the lady announcing the trains", ["Female speech, woman speaking"], Q.SPEAKER_BONUS),
    ("the dog barking at the mailman", ["Bark", "Dog"], Q.CONTAINED_BONUS),  # no person: the sound named
    ("panting after the sprint", ["Pant"], Q.SPEAKER_BONUS),  # "after" says when: the sound before it decides
    # the place named after the sound, turned into a class name ("heart murmur", "engine knocking"; fresh17, fresh13)
    ("the murmur in his heart", ["Heart murmur"], Q.SPEAKER_BONUS),
    ("the knocking in the engine", ["Engine knocking"], Q.SPEAKER_BONUS),
    ("church bells from next door", ["Church bell"], Q.CONTAINED_BONUS),  # not "door bells": "from" is no place
    ("the dog in the car", ["Dog"], Q.CONTAINED_BONUS),  # "car dog" names nothing
])
def test_contained(phrase, names, bonus):
    assert named(phrase) == (names, bonus)


def test_sung_and_most_specific():
    female = by_name("Female speech, woman speaking").index
    assert Q._sung({female}, ["mom", "sings"]) == {by_name("Female singing").index}
    assert Q._sung({SPEECH.index}, ["sang"]) == {by_name("Singing").index}
    assert Q._sung({female}, ["mom", "talks"]) == {female}
    assert Q._sung({DOG.index}, ["singing"]) == {DOG.index}  # not a speech class: kept
    assert Q._most_specific({SPEECH.index, female}) == {female}
    assert Q._most_specific({SPEECH.index}) == {SPEECH.index}


def test_describes_speaker():
    assert Q._describes_speaker(["radio", "host"], 1, "radio")
    assert not Q._describes_speaker(["radio", "host"], 2, "host")  # nothing after it
    assert not Q._describes_speaker(["crying", "host"], 1, "crying")  # an -ing word stays a sound
    assert not Q._describes_speaker(["piano", "host", "playing"], 1, "piano")
    assert not Q._describes_speaker(["radio", "dog"], 1, "radio")
    assert Q._is_speaker("hosts") and not Q._is_speaker("dog")


# ---------------------------------------------------------------- the label matrix

def test_label_texts_are_names_synonyms_and_aliases_with_their_rows():
    texts, owners = Q.label_texts()
    pool = Q.candidates()
    assert len(texts) == len(owners) and owners.dtype == np.int64
    assert texts[:4] == ["Speech", "Male speech, man speaking", "male speech", "man speaking"]
    assert list(owners[:4]) == [0, 1, 1, 1]
    dog_row = pool.index(DOG)
    assert {t for t, r in zip(texts, owners) if r == dog_row} >= {"Dog", "dog", "puppy", "puppies"}
    texts.append("x")
    owners[0] = 99  # a copy: the cached tuple is untouched
    assert Q.label_texts()[0][-1] != "x" and Q.label_texts()[1][0] == 0


def expected_digest(identity: str) -> str:
    texts, _ = Q.label_texts()
    described = [Q.descriptions()[c.mid] for c in Q.candidates()]
    content = hashlib.sha256(json.dumps([list(Q.TEMPLATES), texts, described]).encode()).hexdigest()
    return hashlib.sha256(json.dumps([identity, content]).encode()).hexdigest()


def test_label_matrix_rows_are_template_means_then_descriptions(tmp_path):
    encoder = TableEncoder()
    matrix, owners = Q.label_matrix(encoder, tmp_path)
    texts, text_owners = Q.label_texts()
    pool = Q.candidates()
    assert matrix.dtype == np.float32 and matrix.shape == (len(texts) + len(pool), DIM)
    assert list(owners) == list(text_owners) + [-1] * len(pool)
    np.testing.assert_allclose(matrix[texts.index("Cat")], CAT_ROW, atol=1e-6)
    np.testing.assert_allclose(matrix[texts.index("Dog")], unit(1), atol=1e-7)
    np.testing.assert_allclose(matrix[texts.index("puppy")], unit(0), atol=1e-7)
    np.testing.assert_allclose(matrix[len(texts) + pool.index(DOG)], unit(3), atol=1e-7)
    np.testing.assert_allclose(matrix[len(texts) + pool.index(CAT)], unit(0), atol=1e-7)
    # the names in each template, then the descriptions: four calls
    assert [len(c) for c in encoder.calls] == [len(texts)] * 3 + [len(pool)]
    assert encoder.calls[1][texts.index("Cat")] == "the sound of Cat"
    assert encoder.calls[3][pool.index(DOG)] == Q.descriptions()[DOG.mid]
    path = tmp_path / f"labels-table-{expected_digest('table-1')[:24]}.npy"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    np.testing.assert_array_equal(np.load(path), matrix)


def test_label_rows_are_normalised_even_from_an_unnormalised_encoder(tmp_path):
    matrix, _ = Q.label_matrix(TableEncoder(identity="scaled", scale=3.0), tmp_path)
    texts, _ = Q.label_texts()
    np.testing.assert_allclose(matrix[texts.index("Cat")], CAT_ROW, atol=1e-6)


def test_label_rows_are_normalised_from_short_vectors_too(tmp_path):
    matrix, _ = Q.label_matrix(TableEncoder(identity="short", scale=0.1), tmp_path)
    texts, _ = Q.label_texts()
    np.testing.assert_allclose(matrix[texts.index("Cat")], CAT_ROW, atol=1e-6)  # the sum's norm is 0.22: still unit


def test_a_zero_label_row_stays_zero(tmp_path):
    class Zeros(TableEncoder):
        def encode(self, texts):
            return np.zeros((len(texts), DIM), dtype=np.float32)

    matrix, _ = Q.label_matrix(Zeros(identity="zeros"), tmp_path)
    assert np.isfinite(matrix).all() and not matrix.any()


def test_label_matrix_is_kept_in_memory_then_read_from_disk(tmp_path):
    encoder = TableEncoder(identity="memory")
    first, owners = Q.label_matrix(encoder, tmp_path)
    encoder.calls.clear()
    for path in tmp_path.iterdir():
        path.unlink()
    again, again_owners = Q.label_matrix(encoder, tmp_path)
    assert again is first and again_owners is owners and encoder.calls == []  # from memory
    # a new process: what the file holds is used, whatever the encoder would say
    path = tmp_path / f"labels-table-{expected_digest('memory')[:24]}.npy"
    planted = np.full_like(first, 0.25)
    np.save(path, planted)
    Q._matrix_cache.clear()
    loaded, _ = Q.label_matrix(encoder, tmp_path)
    np.testing.assert_array_equal(loaded, planted)
    assert encoder.calls == []


@pytest.mark.parametrize("damage", ["rows", "dtype", "bytes", "pickle"])
def test_a_wrong_or_damaged_label_file_is_recomputed(tmp_path, damage):
    encoder = TableEncoder(identity=f"damaged-{damage}")
    good, _ = Q.label_matrix(encoder, tmp_path)
    path = tmp_path / f"labels-table-{expected_digest(encoder.identity())[:24]}.npy"
    if damage == "rows":
        np.save(path, good[:-1])
    elif damage == "dtype":
        np.save(path, good.astype(np.float64))
    elif damage == "bytes":
        path.write_bytes(b"not a numpy file")
    else:
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    Q._matrix_cache.clear()
    encoder.calls.clear()
    again, _ = Q.label_matrix(encoder, tmp_path)
    np.testing.assert_array_equal(again, good)
    assert len(encoder.calls) == 4
    np.testing.assert_array_equal(np.load(path), good)  # rewritten


def test_an_unwritable_label_cache_only_costs_recomputing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    matrix, _ = Q.label_matrix(TableEncoder(identity="unwritable"), blocker / "labels")
    assert matrix.shape[1] == DIM
    Q._save_atomically(blocker / "labels" / "x.npy", matrix)  # no error


def test_the_default_label_cache_is_under_the_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("EVENTSEP_CACHE", str(tmp_path / "cache"))
    assert Q._default_cache_dir() == (tmp_path / "cache" / "labels").resolve()
    Q.label_matrix(TableEncoder(identity="default-folder"))
    assert [p.suffix for p in (tmp_path / "cache" / "labels").iterdir()] == [".npy"]


# ---------------------------------------------------------------- ranking

def ranked(phrase: str, top_k: int, tmp_path, encoder=None) -> list[tuple[str, float]]:
    return [(c.name, c.score) for c in Q.rank(phrase, encoder or TableEncoder(), top_k, tmp_path)]


def test_rank_by_cosine_with_the_description_weighted_in(tmp_path):
    result = ranked("zorblax", 3, tmp_path)
    assert [n for n, _ in result] == ["Cat", "Dog", "Speech"]  # the rest all 0: in candidates() order
    assert result[0][1] == pytest.approx(ZORBLAX_CAT, abs=1e-6)
    assert result[1][1] == pytest.approx(ZORBLAX_DOG, abs=1e-6)
    assert result[2][1] == pytest.approx(0.0, abs=1e-7)
    qux = ranked("qux", 1, tmp_path)
    assert qux[0][0] == "Dog" and qux[0][1] == pytest.approx(QUX_DOG, abs=1e-6)


def test_rank_fields_and_length(tmp_path):
    scores = Q.rank("zorblax", TableEncoder(), 2, tmp_path)
    assert len(scores) == 2
    assert (scores[0].index, scores[0].mid, scores[0].name) == (CAT.index, CAT.mid, CAT.name)
    assert type(scores[0].score) is float
    assert len(Q.rank("zorblax", TableEncoder(), 1, tmp_path)) == 1


def test_rank_normalises_the_query_vector(tmp_path):
    result = ranked("zorblax", 2, tmp_path, TableEncoder(identity="scaled-5", scale=5.0))
    assert result[0][1] == pytest.approx(ZORBLAX_CAT, abs=1e-6)
    assert result[1][1] == pytest.approx(ZORBLAX_DOG, abs=1e-6)


def test_rank_normalises_a_short_query_vector(tmp_path):
    result = ranked("zorblax", 2, tmp_path, TableEncoder(identity="scaled-half", scale=0.5))
    assert result[0][1] == pytest.approx(ZORBLAX_CAT, abs=1e-6)
    assert result[1][1] == pytest.approx(ZORBLAX_DOG, abs=1e-6)


@pytest.mark.parametrize("query", ["zorblax", "zorblax, not qux"])
def test_the_label_cache_goes_where_it_is_asked(tmp_path, monkeypatch, query):
    monkeypatch.setenv("EVENTSEP_CACHE", str(tmp_path / "default"))
    Q.map_query(query, TableEncoder(identity=f"where-{query}"), QueryParams(), tmp_path / "asked")
    assert not (tmp_path / "default").exists() and len(list((tmp_path / "asked").iterdir())) == 1
    Q._matrix_cache.clear()
    Q.rank("qux", TableEncoder(identity="where-rank"), 1, tmp_path / "ranked")
    assert not (tmp_path / "default").exists() and len(list((tmp_path / "ranked").iterdir())) == 1


def test_a_class_named_inside_the_phrase_gets_the_bonus_and_no_description_part(tmp_path):
    # "zorblax dog": the same vector as "zorblax"; Dog is named inside, so its raw 0.6 + 0.15 = 0.75 now beats
    # Cat's raw cosine 1.6/√5 = 0.716 (neither divided by 1.05)
    result = ranked("zorblax dog", 2, tmp_path)
    assert result[0][0] == "Dog" and result[0][1] == pytest.approx(0.6 + Q.CONTAINED_BONUS, abs=1e-6)
    assert result[1][0] == "Cat" and result[1][1] == pytest.approx(0.8 * 2 / math.sqrt(5), abs=1e-6)


def test_scores_are_capped_at_one(tmp_path):
    result = ranked("blorp dog", 1, tmp_path)  # Dog's cosine 1 plus the bonus
    assert result == [("Dog", 1.0)]


def test_an_exact_name_comes_first_at_one(tmp_path):
    assert ranked("dog", 1, tmp_path) == [("Dog", 1.0)]
    assert ranked("dog sounds", 1, tmp_path) == [("Dog", 1.0)]
    assert ranked("cymbols", 1, tmp_path) == [("Cymbal", 1.0)]  # spelling corrected before matching


# ---------------------------------------------------------------- map_query

def test_map_query_refuses_what_is_not_a_query(tmp_path):
    encoder = TableEncoder()
    with pytest.raises(TypeError, match=r"^the query must be text, not int$"):
        Q.map_query(5, encoder, QueryParams(), tmp_path)
    with pytest.raises(ValueError,
                       match=r"^the query is empty: say which sound to separate, e\.g\. 'the dog barking'$"):
        Q.map_query(" \n ", encoder, QueryParams(), tmp_path)
    with pytest.raises(ValueError, match=r"^the query is 501 characters long; keep it under 500$"):
        Q.map_query("x" * 501, encoder, QueryParams(), tmp_path)
    assert Q.map_query("x" * 500, encoder, QueryParams(), tmp_path).classes  # 500 is allowed
    with pytest.raises(ValueError, match=r"^the query 'remove' names no sound to separate or remove$"):
        Q.map_query("  remove ", encoder, QueryParams(), tmp_path)


def test_map_query_keeps_top_k_and_the_target_text(tmp_path):
    mapping = Q.map_query("zorblax", TableEncoder(), QueryParams(top_k=2), tmp_path)
    assert [c.name for c in mapping.classes] == ["Cat", "Dog"]
    assert mapping.exclude == [] and mapping.remove is False and mapping.target_text == "zorblax"


def test_map_query_drops_excluded_classes_and_ranks_deep_enough_to_fill_top_k(tmp_path):
    # "qux" alone ranks Dog first: it is excluded, and "zorblax" is ranked 2 + 1 deep to still give two classes
    mapping = Q.map_query("zorblax, not qux", TableEncoder(), QueryParams(top_k=2), tmp_path)
    assert [c.name for c in mapping.exclude] == ["Dog"]
    assert [c.name for c in mapping.classes] == ["Cat", "Speech"]
    assert mapping.remove is False


def test_map_query_min_score_keeps_a_score_equal_to_it(tmp_path):
    mapping = Q.map_query("dog", TableEncoder(), QueryParams(top_k=3, min_score=1.0), tmp_path)
    assert [(c.name, c.score) for c in mapping.classes] == [("Dog", 1.0)]
    low = Q.map_query("zorblax", TableEncoder(), QueryParams(top_k=3, min_score=0.6), tmp_path)
    assert [c.name for c in low.classes] == ["Cat"]


def test_map_query_splits_and_phrases_and_puts_each_phrase_best_first(tmp_path):
    # "zorblax" ranks Cat, Dog, ...; "qux" ranks Dog, ...: each part's best first, then the rest by score
    mapping = Q.map_query("zorblax and qux", TableEncoder(), QueryParams(top_k=3), tmp_path)
    assert [c.name for c in mapping.classes] == ["Cat", "Dog", "Speech"]
    assert mapping.target_text == "zorblax and qux"
    other = Q.map_query("qux & zorblax", TableEncoder(), QueryParams(top_k=2), tmp_path)
    assert [c.name for c in other.classes] == ["Dog", "Cat"] and other.target_text == "qux and zorblax"


def test_map_query_keeps_an_exact_name_with_and_whole(tmp_path, monkeypatch):
    # "pots and pans" is near Dog, "pots" and "pans" near Cat: the runner-up shows which was ranked
    monkeypatch.setitem(TABLE, "pots and pans", unit(1))
    monkeypatch.setitem(TABLE, "pots", unit(2))
    monkeypatch.setitem(TABLE, "pans", unit(2))
    mapping = Q.map_query("pots and pans", TableEncoder(), QueryParams(top_k=2), tmp_path)
    assert [c.name for c in mapping.classes] == ["Dishes, pots, and pans", "Dog"]
    assert mapping.target_text == "pots and pans"


def test_map_query_removal_and_corrected_target_text(tmp_path):
    mapping = Q.map_query("remove the cymbols", TableEncoder(), QueryParams(top_k=1), tmp_path)
    assert mapping.remove is True and [c.name for c in mapping.classes] == ["Cymbal"]
    assert mapping.target_text == "cymbals"


def test_unique_keeps_the_first_of_each_class():
    a, b, a2 = Q.ClassScore(1, "m1", "A", 0.5), Q.ClassScore(2, "m2", "B", 0.9), Q.ClassScore(1, "m1", "A", 0.7)
    assert Q._unique([a, b, a2]) == [a, b]
    assert Q._unique(iter([])) == []


# ---------------------------------------------------------------- saved mappings

def test_query_mapping_to_and_from_dict():
    mapping = Q.QueryMapping([Q.ClassScore(74, "/m/0bt9lr", "Dog", 0.5)], [Q.ClassScore(81, "/m/01yrx", "Cat", 0.25)],
                             True, "dog")
    assert mapping.to_dict() == {"classes": [{"index": 74, "mid": "/m/0bt9lr", "name": "Dog", "score": 0.5}],
                                 "exclude": [{"index": 81, "mid": "/m/01yrx", "name": "Cat", "score": 0.25}],
                                 "remove": True, "target_text": "dog"}
    assert Q.QueryMapping.from_dict(mapping.to_dict()) == mapping
    bare = Q.QueryMapping.from_dict({"classes": [{"index": 1, "mid": "m", "name": "N", "score": 1.0}]})
    assert bare.exclude == [] and bare.remove is False and bare.target_text == ""
    coerced = Q.QueryMapping.from_dict({"classes": [], "remove": 1, "target_text": 7})
    assert coerced.remove is True and coerced.target_text == "7"


def test_a_broken_saved_mapping_is_one_value_error():
    with pytest.raises(ValueError) as error:
        Q.QueryMapping.from_dict({"exclude": []})
    assert str(error.value) == "not a saved query mapping (KeyError: 'classes')"
    with pytest.raises(ValueError, match=r"^not a saved query mapping \(TypeError: "):
        Q.QueryMapping.from_dict({"classes": [{"index": 1}]})


# ---------------------------------------------------------------- encoders, without loading a model

def test_encoder_names_and_the_minilm_guards():
    encoder = Q.encoder_from_name(" MiniLM ")
    assert isinstance(encoder, Q.MiniLMEncoder) and encoder._model is None
    with pytest.raises(TypeError, match="^encode takes a list of texts, not one string$"):
        encoder.encode("dog")
    empty = encoder.encode([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    assert encoder._model is None  # nothing was loaded
    with pytest.raises(ValueError) as error:
        Q.encoder_from_name("bert")
    assert str(error.value) == "unknown text encoder 'bert'; known: minilm, clap"
    with pytest.raises(ValueError, match="^unknown text encoder 5; known: minilm, clap$"):
        Q.encoder_from_name(5)


def test_text_encoding_runs_on_one_torch_thread_and_restores_the_count():
    import torch

    assert Q.torch_threads_for(1) == 1 and Q.torch_threads_for(300) == 1
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with Q._torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with Q._torch_threads(None):
            assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        guard = Q._torch_threads(1)
        with guard:
            assert torch.get_num_threads() == 1
        assert guard.previous is None and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_minilm_loads_its_folder_offline_once_and_encodes_through_sentence_transformers(monkeypatch, request):
    """The model itself replaced by a recorder (sys.modules), so nothing is loaded: what it is asked for is checked."""
    import sys
    import types

    import torch

    made, encoded, logging_calls, threads = [], [], [], []
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    request.addfinalizer(lambda: torch.set_num_threads(before))

    class FakeModel:
        def __init__(self, folder, device):
            made.append((folder, device))

        def encode(self, texts, **options):
            import torch

            encoded.append((texts, options))
            threads.append(torch.get_num_threads())
            return np.ones((len(texts), 384), dtype=np.float64)

    logging = types.SimpleNamespace(disable_progress_bar=lambda: logging_calls.append("bar"),
                                    set_verbosity_error=lambda: logging_calls.append("error"))
    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=FakeModel))
    monkeypatch.setitem(sys.modules, "transformers", types.SimpleNamespace())
    monkeypatch.setitem(sys.modules, "transformers.utils", types.SimpleNamespace(logging=logging))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    encoder = Q.MiniLMEncoder()
    out = encoder.encode(("a dog", "a cat"))
    assert out.dtype == np.float32 and out.shape == (2, 384)
    assert made == [(str(encoder.folder), "cpu")]
    assert encoded == [(["a dog", "a cat"], {"normalize_embeddings": True, "convert_to_numpy": True, "batch_size": 64,
                                             "show_progress_bar": False})]
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert logging_calls == ["bar", "error"]
    assert threads == [1] and torch.get_num_threads() == 2  # one thread while encoding, then as it was
    encoder.encode(["again"])
    assert len(made) == 1 and encoder._model is not None  # loaded once
    assert encoder._load() is encoder._model
    assert (encoder.folder / "vocab.txt").is_file()  # the wheel's model folder
    monkeypatch.setattr("eventsep.pretrained.tree_sha256", lambda folder: f"sha256 of {folder}")
    assert encoder.identity() == f"sha256 of {encoder.folder}"
