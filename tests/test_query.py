"""Tests of the query → AudioSet class mapping: parsing, exact names, the label cache, and accuracy on
the checked-in prompt set against the plain-cosine baseline. `python tests/test_query.py` prints the table."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eventsep import query as Q
from eventsep.backends import BackendUnavailable
from eventsep.config import QueryParams
from eventsep.ontology import by_name, classes

PROMPTS = Path(__file__).parent / "data" / "query_prompts.json"
# Fresh sets: everyday prompts written by someone who never read the alias table or this code, each scored once
# before any change made for it; who wrote each, when, what it was scored after and how many of its prompts repeat
# older ones: docs/query.md
FRESH_SPLITS = tuple(f"fresh{number}" for number in range(3, 21))
FRESH = tuple(Path(__file__).parent / "data" / f"query_prompts_{split}.json" for split in FRESH_SPLITS)

# Floors a little under what was measured (docs/query.md); a regression below them fails.
FLOORS = {  # split: (top-1, top-3, negation right)
    "dev": (0.985, 0.995, 0.99),
    "heldout": (0.95, 0.975, 0.975),
    "fresh": (0.97, 0.97, 0.97),
    "fresh2": (0.95, 0.975, 0.975),
    "fresh3": (0.98, 0.98, 0.98),
    "fresh3-tune": (0.98, 0.98, 0.98),
    "fresh3-holdout": (0.98, 0.98, 0.98),  # tuned on after its one honest score (0.909): docs/query.md
    "fresh4": (0.93, 0.96, 0.98),
    "fresh4-tune": (0.96, 0.98, 0.98),
    "fresh4-holdout": (0.90, 0.95, 0.97),  # scored once after tuning on fresh4-tune: 0.923 (docs/query.md)
    "fresh5": (0.94, 0.94, 0.98),  # first score 0.893 / 0.947 / 0.992; 0.954 after tuning on fresh5-tune
    "fresh5-tune": (0.92, 0.92, 0.98),
    "fresh5-holdout": (0.98, 0.98, 0.98),
    "fresh6": (0.96, 0.98, 0.975),  # first score 0.957 / 0.984 / 0.984; 0.968 after tuning on fresh6-tune
    "fresh6-tune": (0.985, 0.98, 0.98),
    "fresh6-holdout": (0.94, 0.975, 0.97),
    "fresh7": (0.95, 0.95, 0.99),  # first score 0.960 / 0.960 / 1.000 (0.949 on the 117 prompts not seen before)
    "fresh7-tune": (0.955, 0.955, 0.99),
    "fresh7-holdout": (0.94, 0.94, 0.99),
    "fresh8": (0.94, 0.96, 0.99),  # first score 0.947 / 0.967 / 1.000 (0.950 on the 120 prompts not seen before)
    "fresh8-tune": (0.92, 0.95, 0.99),
    "fresh8-holdout": (0.94, 0.94, 0.99),
    "fresh9": (0.98, 0.99, 0.99),  # first score 0.980 / 0.993 / 0.993 (0.971 on the 104 prompts not seen before)
    "fresh9-tune": (0.97, 0.98, 0.98),
    "fresh9-holdout": (0.97, 0.98, 0.98),
    "fresh10": (0.97, 0.98, 0.98),  # first score 0.973 / 0.987 / 0.987 (0.964 on the 112 prompts not seen before)
    "fresh10-tune": (0.97, 0.98, 0.98),
    "fresh10-holdout": (0.96, 0.98, 0.98),
    "fresh11": (0.96, 0.98, 0.93),  # first score 0.967 / 0.980 / 0.933 (0.953 on the 107 prompts not seen before)
    "fresh11-tune": (0.95, 0.97, 0.9),
    "fresh11-holdout": (0.95, 0.97, 0.9),
    "fresh12": (0.96, 0.96, 0.97),  # first score 0.967 / 0.967 / 0.973 (0.958 on the 118 prompts not seen before)
    "fresh12-tune": (0.94, 0.94, 0.97),
    "fresh12-holdout": (0.98, 0.98, 0.96),
    "fresh13": (0.96, 0.98, 0.97),  # first score 0.967 / 0.987 / 0.973 (0.955 on the 111 prompts not seen before)
    "fresh13-tune": (0.95, 0.98, 0.97),
    "fresh13-holdout": (0.98, 0.98, 0.96),
    "fresh14": (0.93, 0.96, 0.96),  # first score 0.933 / 0.967 / 0.967 (0.897 on the 97 prompts not seen before)
    "fresh14-tune": (0.92, 0.96, 0.96),
    "fresh14-holdout": (0.94, 0.97, 0.97),
    "fresh15": (0.96, 0.975, 0.94),  # first score 0.967 / 0.980 / 0.947 (0.948 on the 97 prompts not seen before)
    "fresh15-tune": (0.97, 0.98, 0.95),
    "fresh15-holdout": (0.94, 0.96, 0.93),
    "fresh16": (0.97, 0.975, 0.94),  # first score 0.973 / 0.980 / 0.947 (0.957 on the 93 prompts not seen before)
    "fresh16-tune": (0.97, 0.98, 0.95),
    "fresh16-holdout": (0.96, 0.96, 0.93),
    "fresh17": (0.955, 0.975, 0.98),  # first score 0.960 / 0.980 / 0.987 (0.951 on the 122 prompts not seen before)
    "fresh17-tune": (0.94, 0.96, 0.97),
    "fresh17-holdout": (0.98, 0.99, 0.99),
    "fresh18": (0.98, 0.99, 0.98),  # first score 0.987 / 0.993 / 0.987 (0.981 on the 107 prompts not seen before)
    "fresh18-tune": (0.98, 0.98, 0.97),
    "fresh18-holdout": (0.98, 0.99, 0.99),
    "fresh19": (0.98, 0.98, 0.98),  # first score 0.987 / 0.987 / 0.987 (0.981 on the 103 prompts not seen before)
    "fresh19-tune": (0.97, 0.97, 0.98),
    "fresh19-holdout": (0.99, 0.99, 0.97),
    "fresh20": (0.97, 0.97, 0.98),  # first score 0.973 / 0.973 / 0.987 (0.968 on the 125 prompts not seen before)
    "fresh20-tune": (0.95, 0.95, 0.97),
    "fresh20-holdout": (0.99, 0.99, 0.99),
    "all": (0.97, 0.98, 0.99),  # 0.969 with fresh5 unseen, 0.981 after; 0.976 with fresh6 unseen; 0.975 with fresh7; 0.996 with fresh9
}
SPLITS = ("dev", "heldout", "fresh", "fresh2",
          *(f"{split}{part}" for split in FRESH_SPLITS for part in ("", "-tune", "-holdout")), "all")
BASELINE_TOP1_CEILING = 0.90  # the plain cosine measured 0.852 top-1 on the whole set


def load_prompts() -> list[dict]:
    return json.loads(PROMPTS.read_text("utf-8")) + [item for path in FRESH for item in json.loads(path.read_text("utf-8"))]


def fresh_part(query: str, split: str) -> str:
    """A fresh set is split once, by a hash of the prompt, before any tuning: about 60 % to tune on, 40 % held out."""
    return f"{split}-tune" if int(hashlib.sha256(query.encode()).hexdigest()[:8], 16) % 5 < 3 else f"{split}-holdout"


def splits_of(item: dict) -> tuple[str, ...]:
    extra = (fresh_part(item["query"], item["split"]),) if item["split"] in FRESH_SPLITS else ()
    return (item["split"], *extra, "all")


def score(items: list[dict], predict) -> dict[str, tuple[float, float, float]]:
    """{split: (top-1, top-3, negation right)}; predict(query) -> (names best first, excluded names, remove)."""
    hits: dict[str, list[tuple[bool, bool, bool]]] = {}
    for item in items:
        names, excluded, remove = predict(item["query"])
        top1 = bool(names) and names[0] in item["accept"]
        top3 = any(name in item["accept"] for name in names[:3])
        negation = (remove == item["remove"] and len(excluded) == len(item["exclude"])
                    and all(name in accept for name, accept in zip(excluded, item["exclude"])))
        for split in splits_of(item):
            hits.setdefault(split, []).append((top1, top3, negation))
    return {split: tuple(float(np.mean(column)) for column in zip(*rows)) for split, rows in hits.items()}


def method_predictor(encoder, cache_dir):
    def predict(text):
        mapping = Q.map_query(text, encoder, QueryParams(top_k=3), cache_dir=cache_dir)
        return [c.name for c in mapping.classes], [c.name for c in mapping.exclude], mapping.remove
    return predict


def baseline_predictor(encoder):
    """Plain cosine of the raw query against the raw display names of all 527 classes: no templates,
    aliases, exact matching, exclusions or negation."""
    names = [c.name for c in classes()]
    matrix = encoder.encode(names)

    def predict(text):
        order = np.argsort(-(matrix @ encoder.encode([text])[0]))
        return [names[i] for i in order[:3]], [], False
    return predict


# ---------------------------------------------------------------- the real encoder

@pytest.fixture(scope="module")
def minilm():
    return Q.encoder_from_name("minilm")


@pytest.fixture(scope="module")
def measured(minilm, tmp_path_factory):
    items = load_prompts()
    return (score(items, method_predictor(minilm, tmp_path_factory.mktemp("labels"))),
            score(items, baseline_predictor(minilm)))


def test_prompt_set_is_large_varied_and_valid():
    items = load_prompts()
    assert len(items) >= 120
    for path in (PROMPTS, *FRESH):
        queries = [i["query"] for i in json.loads(path.read_text("utf-8"))]
        assert len(set(queries)) == len(queries), path.name
    for split in FRESH_SPLITS:
        fresh = [i for i in items if i["split"] == split]
        assert len(fresh) >= 100 and 0.45 <= sum(fresh_part(i["query"], split) == f"{split}-tune"
                                                 for i in fresh) / len(fresh) <= 0.7  # a hash split: fresh18 drew 74 of 150
    assert sum(i["remove"] for i in items) >= 10 and sum(bool(i["exclude"]) for i in items) >= 10
    answerable = {c.name for c in Q.candidates()} | {entry.name for entry in Q.music_kinds()[0].values()}
    for item in items:
        for name in item["accept"] + [n for group in item["exclude"] for n in group]:
            by_name(name)
        assert answerable.intersection(item["accept"]), item["query"]


@pytest.mark.parametrize("split", list(FLOORS))
def test_accuracy_on_the_prompt_set_is_at_the_measured_level(measured, split):
    ours, _ = measured
    top1, top3, negation = ours[split]
    floor1, floor3, floor_negation = FLOORS[split]
    assert top1 >= floor1 and top3 >= floor3 and negation >= floor_negation, ours[split]


def test_method_beats_the_plain_cosine_baseline(measured):
    ours, baseline = measured
    assert baseline["all"][0] <= BASELINE_TOP1_CEILING
    assert ours["all"][0] - baseline["all"][0] >= 0.1


@pytest.mark.parametrize("split", SPLITS)
def test_never_below_plain_cosine_on_any_split(measured, split):
    ours, baseline = measured
    assert ours[split][0] >= baseline[split][0] and ours[split][1] >= baseline[split][1], (ours[split], baseline[split])


def test_minilm_encodes_unit_vectors_and_has_a_content_identity(minilm):
    vectors = minilm.encode(["a dog barking", "rain on a window"])
    assert vectors.shape == (2, minilm.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    identity = minilm.identity()
    assert len(identity) == 64 and identity == minilm.identity()
    assert identity != hashlib.sha256((minilm.folder / "model.safetensors").read_bytes()).hexdigest()
    assert minilm.encode([]).shape == (0, minilm.dim)


def test_hard_prompts_with_minilm(minilm, tmp_path):
    def mapped(text):
        return Q.map_query(text, minilm, QueryParams(top_k=3), cache_dir=tmp_path)

    assert mapped("squeezebox").classes[0].name == "Accordion"
    assert mapped("the tuba").classes[0].name == "Brass instrument"
    assert mapped("drizzle on the window").classes[0].name in {"Rain", "Rain on surface", "Raindrop"}
    speaker = mapped("not the music, just the speaker")
    assert speaker.classes[0].name == "Speech" and [c.name for c in speaker.exclude] == ["Music"]
    assert "Music" not in [c.name for c in speaker.classes] and not speaker.remove
    dog = mapped("remove the dog")
    assert dog.remove and dog.classes[0].name == "Dog" and dog.target_text == "dog"
    assert mapped("piano music").classes[0].name == "Piano"
    assert mapped("water dripping").classes[0].name == "Drip"
    # what follows "after", "while", … says when the sound is heard, not what makes it (fresh15)
    assert mapped("panting after the sprint").classes[0].name == "Pant"
    hihat = mapped("kill the hi-hat, it's too loud")  # the comment names no second sound (fresh14)
    assert hihat.remove and hihat.classes[0].name == "Hi-hat"
    # "jingle" beside an ad or a podcast is the music; named alone it stays the tinkle (fresh16, fresh17)
    assert mapped("remove the jingle from the radio ad").classes[0].name == "Jingle (music)"
    assert mapped("the keys jingle").classes[0].name != "Jingle (music)"
    assert mapped("blender whirring in my smoothie video").classes[0].name == "Blender"
    assert mapped("a capella group").classes[0].name == "A capella"  # the spelling with one p (fresh19)


# ---------------------------------------------------------------- parsing

@pytest.mark.parametrize("text, expected", [
    ("not the music, just the speaker", (["speaker"], ["music"], False)),
    ("remove the dog", (["dog"], [], True)),
    ("Please get rid of the wind.", (["wind"], [], True)),
    ("without drums", (["drums"], [], True)),
    ("no drums", (["drums"], [], True)),
    ("everything but the vocals", (["vocals"], [], True)),
    ("I don't want the dog", (["dog"], [], True)),
    ("nothing but the drums", (["drums"], [], False)),
    ("remove everything except the cello", (["cello"], [], False)),
    ("keep the violin and drop the cello", (["violin"], ["cello"], False)),
    ("same track but without the banjo", (["banjo"], [], True)),  # the same track less the banjo: a removal
    ("the same song, no drums", (["drums"], [], True)),
    ("karaoke version without the singer", (["singer"], [], True)),  # a karaoke version has no singer
    ("my cover without the vocals", (["vocals"], [], True)),  # the whole recording by name, less the vocals
    ("keep everything except the orchestra", (["orchestra"], [], True)),  # keeping all but X removes X
    ("give me everything except the generator", (["generator"], [], True)),
    ("hi-hat is too loud, take it out", (["hi-hat is too loud"], [], True)),  # the pronoun is what came before
    ("take my husband's snoring out of the recording", (["husband's snoring from the recording"], [], True)),
    ("clean up the static hiss on the tape", (["static hiss on the tape"], [], True)),  # cleaning up a noise
    ("clean up the vocals", (["clean up the vocals"], [], False)),  # cleaning up what is wanted keeps it
    ("baby monitor clip without the lullaby", (["lullaby"], [], True)),  # the recording named in a few words
    ("just the song", (["song"], [], False)),
    ("only the piano, no drums", (["piano"], ["drums"], False)),
    ("birds but not the wind", (["birds"], ["wind"], False)),
    ("remove the rain but keep the thunder", (["thunder"], ["rain"], False)),
    ("the neighbor's lawnmower, please remove it", (["neighbor's lawnmower"], [], True)),
    ("chewing sounds, get rid of them", (["chewing sounds"], [], True)),
    ("vacuum cleaner pls remove", (["vacuum cleaner"], [], True)),  # a removal verb closing the query
    ("the hiss, remove please", (["hiss"], [], True)),
    ("the dog, and keep it", (["dog", "it"], [], False)),  # only a removal verb makes "it" a removal
    ("pls keep only the narrator", (["narrator"], [], False)),
    ("um, the audiobook reader i guess", (["audiobook reader"], [], False)),
    ("um can I get only the flute part?", (["flute part"], [], False)),
    ("keep the woman speaking", (["woman speaking"], [], False)),
    ("the sound of noise", (["noise"], [], False)),
])
def test_parse_separates_targets_exclusions_and_removal(text, expected):
    assert Q.parse(text) == expected


def test_exact_names_synonyms_and_aliases():
    assert Q.exact_match("violin").name == "Violin, fiddle"
    assert Q.exact_match("Fiddle").name == "Violin, fiddle"
    assert Q.exact_match("honking").name == "Vehicle horn, car horn, honking"
    assert Q.exact_match("faucet").name == "Water tap, faucet"
    assert Q.exact_match("police car").name == "Police car (siren)"
    assert Q.exact_match("violins").name == "Violin, fiddle"
    assert Q.exact_match("squeezebox").name == "Accordion"
    assert Q.exact_match("hi-hat").name == "Hi-hat" and Q.exact_match("hi hat").name == "Hi-hat"
    assert Q.exact_match("kettle drum").name == "Timpani"  # singular of the alias "kettle drums"
    assert Q.exact_match("silence") is None and Q.exact_match("jazz") is None
    assert Q.exact_match("music box") is None


def test_every_synonym_of_a_target_reaches_a_target_class():
    table = Q._exact_table()
    for entry in Q.candidates():
        for synonym in Q._synonyms(entry.name):
            assert table[synonym].name not in Q.NOT_TARGETS


def test_spelling_is_corrected_only_for_unknown_words():
    assert Q.correct_spelling("saxaphone") == "saxophone"
    assert Q.correct_spelling("the helicoptor") == "the helicopter"
    assert Q.correct_spelling("the accordian") == "the accordion"
    assert Q.correct_spelling("camera shutter") == "camera shutter"  # an English word is left alone
    assert Q.correct_spelling("tires screeching") == "tires screeching"


@pytest.mark.parametrize("text", ["the hens clucking", "pigs oinking", "music blaring", "a busy market bustling",
                                  "the fiddler"])
def test_words_of_the_english_word_list_are_never_corrected(text):
    # Before the word list, "clucking" became "clicking" and "oinking" "honking" (issue 14); the -ing forms
    # of label words now guard those two, but without the word list "blaring", "bustling" and "fiddler"
    # would still become "barking", "rustling" and "fiddle".
    assert Q.WORD_LIST.is_file(), "install Debian's wamerican (scripts/setup.sh)"
    assert Q.correct_spelling(text) == text


@pytest.mark.parametrize("text, expected", [
    ("the hens clucking", {"Cluck", "Chicken, rooster"}),
    ("pigs oinking", {"Oink", "Pig"}),
    ("the girl giggling", {"Giggle"}),
    ("the sermon", {"Speech"}),
    ("the radio host", {"Speech"}),
    ("what the teacher says", {"Speech"}),
    ("the preacher at the pulpit", {"Speech"}),
    ("what the tour guide says about the cathedral, nothing else", {"Speech"}),
    ("my voicemail", {"Speech"}),
    ("the lady host", {"Female speech, woman speaking"}),
    ("the teacher laughing", {"Laughter"}),
    ("the piano teacher playing", {"Piano"}),
    ("the lady on the phone", {"Female speech, woman speaking"}),
    ("knocking on the door", {"Knock"}),
    ("turn this into just the drums", {"Drum kit"}),
    ("turn this track into only the cymbals", {"Cymbal"}),
    ("can you pull out just the guy yelling at the ref", {"Yell"}),
    ("dad's voice in the home video", {"Male speech, man speaking"}),
    ("my grandma on the phone", {"Female speech, woman speaking"}),
    ("the lullaby mom sings at bedtime", {"Female singing"}),
    ("the little boy singing", {"Child singing"}),
    ("the live band at the wedding", {"Music"}),
    # fresh5-tune's patterns: a sound beside a person outranks the person's speech; a person singing is heard
    # singing even when "singing" is named; a source before a word for how it sounds is the sound meant
    ("the toddler shrieking", {"Screaming"}),
    ("grandpa singing in the car", {"Male singing"}),
    ("the AC hum", {"Air conditioning"}),
    ("the cashier calling out prices", {"Speech"}),
    ("the couple arguing", {"Speech", "Conversation"}),
    ("my tummy rumbling", {"Stomach rumble"}),
    ("the keyboard clicking", {"Typing"}),
    ("the baby babbling", {"Babbling"}),
    # fresh6-tune's: a player "on" an instrument is heard playing it; "rattling off" is said, not rattled
    ("the guy on harmonica", {"Harmonica"}),
    ("the girl on drums", {"Drum", "Drum kit"}),
    ("the auctioneer rattling off bids", {"Speech"}),
    ("the lady on the phone laughing", {"Laughter", "Female speech, woman speaking"}),
    # session 8, from fresh6-tune: a sergeant is a speaker, and "drill" before him describes him
    ("the drill sergeant bellowing", {"Bellow"}),
    ("the sergeant", {"Speech"}),
    # session 9, from fresh8-tune (and fresh6's and fresh7's "runner panting"): a runner is a person by what he
    # does; the sound named beside him is what he makes, and alone he is left to the cosine
    ("the runner panting after the race", {"Pant"}),
    ("the swimmer splashing", {"Splash, splatter"}),
    ("the runner", {"Run"}),
])
def test_sound_words_roles_and_requests(minilm, tmp_path, text, expected):
    mapping = Q.map_query(text, minilm, QueryParams(top_k=3), cache_dir=tmp_path)
    assert mapping.classes[0].name in expected and not mapping.remove, [c.name for c in mapping.classes]


def test_removal_phrasings():
    assert Q.parse("could we take away the traffic") == (["traffic"], [], True)
    assert Q.parse("turn off the fan") == (["fan"], [], True)
    assert Q.parse("leave out the drums") == (["drums"], [], True)
    assert Q.parse("leave only the piano") == (["piano"], [], False)
    assert Q.parse("what the woman is saying") == (["woman speaking"], [], False)


def test_ontology_descriptions_are_the_official_file_with_its_licence():
    data = Path(Q.__file__).parent / "data"
    assert hashlib.sha256((data / "ontology.json").read_bytes()).hexdigest() == (
        "9c685f4403eecc3ca9be37fd7285cf212feaaea6ff7229d3e7ca89e0d1f2d15d")
    assert "CC BY-SA 4.0" in (data / "ontology.LICENSE.md").read_text("utf-8")
    ontology = {e["id"]: e["name"] for e in json.loads((data / "ontology.json").read_text("utf-8"))}
    assert all(ontology[c.mid] == c.name for c in classes())
    described = Q.descriptions()
    assert described[by_name("Speech synthesizer").mid] == "Artificially-produced human speech."


def test_descriptions_are_embedded_after_the_names(tmp_path):
    encoder = BagOfWordsEncoder(identity="bow-descriptions")
    matrix, owners = Q.label_matrix(encoder, tmp_path)
    texts, _ = Q.label_texts()
    assert matrix.shape[0] == len(texts) + len(Q.candidates()) and (owners[len(texts):] == -1).all()
    row = len(texts) + [c.name for c in Q.candidates()].index("Oink")
    np.testing.assert_allclose(matrix[row], encoder.encode([Q.descriptions()[by_name("Oink").mid]])[0], atol=1e-6)


def test_alias_table_points_at_target_classes():
    table = Q.aliases()
    assert len(table) >= 100
    for word in ("vocals", "singer", "drums", "woman", "man", "kid", "child", "cars", "puppy", "birds", "drizzle"):
        assert word in table, word
    assert Q.exact_match("kids").name == "Child speech, kid speaking"
    assert all(name not in Q.NOT_TARGETS for name in table.values())


# ---------------------------------------------------------------- with controlled encoders

class BagOfWordsEncoder:
    """One dimension per hashed word: cosine counts shared words, so answers are known in advance."""

    name = "bag-of-words"
    dim = 512

    def __init__(self, identity: str = "bow-1", generic_words: tuple[str, ...] = ()):
        self._identity, self.generic_words, self.calls = identity, generic_words, []

    def identity(self) -> str:
        return self._identity

    def encode(self, texts):
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in Q._normalise(text).split() + list(self.generic_words):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_generic_label_does_not_win_by_substring(tmp_path):
    encoder = BagOfWordsEncoder()
    mapping = Q.map_query("piano music", encoder, QueryParams(top_k=3), cache_dir=tmp_path)
    assert mapping.classes[0].name == "Piano"
    assert Q.map_query("music", encoder, QueryParams(), cache_dir=tmp_path).classes[0].name == "Music"
    assert Q.map_query("the speech", encoder, QueryParams(), cache_dir=tmp_path).classes[0].name == "Speech"


def test_non_targets_are_never_candidates(tmp_path):
    encoder = BagOfWordsEncoder()
    for text in ("the silence", "the sad dog", "sad", "inside a large room or hall", "field recording", "echo",
                 "the jazz trumpet", "the jazz band saxophone", "the jazz singer", "flamenco guitar", "the rock falling", "the house",
                 "pop"):
        mapping = Q.map_query(text, encoder, QueryParams(top_k=20), cache_dir=tmp_path)
        assert not {c.name for c in mapping.classes} & Q.NOT_TARGETS, text
    assert len(Q.candidates()) == len(classes()) - len(Q.NOT_TARGETS)


@pytest.mark.parametrize("text, kind", [
    ("rock music", "Rock music"), ("the jazz trio", "Jazz"), ("reggae", "Reggae"), ("the heavy metal", "Heavy metal"),
    ("heavy metal blasting from his car", "Heavy metal"), ("techno beat from the club", "Techno"),
    ("no more elevator music please", "Background music"), ("the a cappella group", "A capella"),
    ("take out the video game soundtrack", "Video game music"), ("carolers at the door", "Christmas music"),
    ("the regae song", "Reggae"), ("mute the song playing on the radio", "Song"),
    ("the creepy score in my horror short", "Scary music"), ("the lullaby", "Lullaby"),
    ("get rid of the heavy metal my neighbor blasts", "Heavy metal"),  # an unambiguous genre before other words
    ("the reggae my dad plays", "Reggae"),  # a person beside it is no other sound
])
def test_a_kind_of_music_is_a_target_only_where_named(tmp_path, text, kind):
    """Genres and music roles are no candidates for the cosine; a phrase that names one before a word for music, or
    alone, asks for it: first, with the cosine's best after it."""
    mapping = Q.map_query(text, BagOfWordsEncoder(), QueryParams(top_k=3), cache_dir=tmp_path)
    assert mapping.classes[0].name == kind and mapping.classes[0].score == 1.0
    assert len(mapping.classes) == 3 and not {c.name for c in mapping.classes[1:]} & Q.NOT_TARGETS
    assert mapping.remove == text.startswith(("no ", "take out", "mute", "get rid"))


def test_top_k_min_score_and_exclusions(tmp_path):
    encoder = BagOfWordsEncoder()
    mapping = Q.map_query("only the guitar, not the electric guitar", encoder, QueryParams(top_k=5),
                          cache_dir=tmp_path)
    names = [c.name for c in mapping.classes]
    assert names[0] == "Guitar" and "Electric guitar" not in names and len(names) <= 5
    assert [c.name for c in mapping.exclude] == ["Electric guitar"]
    assert all(a.score >= b.score for a, b in zip(mapping.classes[1:], mapping.classes[2:]))
    strict = Q.map_query("guitar", encoder, QueryParams(top_k=5, min_score=0.99), cache_dir=tmp_path)
    assert [c.name for c in strict.classes] == ["Guitar"] and strict.classes[0].score == 1.0
    both = Q.map_query("guitar and drums", encoder, QueryParams(top_k=3), cache_dir=tmp_path)
    assert [c.name for c in both.classes[:2]] == ["Guitar", "Drum kit"]


def test_label_matrix_is_computed_once_and_cached_on_disk(tmp_path):
    encoder = BagOfWordsEncoder(identity="bow-cache-test")
    Q.map_query("dog", encoder, QueryParams(), cache_dir=tmp_path)
    label_calls = len(encoder.calls) - 1
    assert label_calls == len(Q.TEMPLATES) + 1  # the names in each template, then the descriptions
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npy" and "partial" not in files[0].name
    encoder.calls.clear()
    Q.map_query("cat", encoder, QueryParams(), cache_dir=tmp_path)
    assert encoder.calls == [1]  # only the query itself
    Q._matrix_cache.clear()  # a new process: read from disk, not recomputed
    Q.map_query("cat", encoder, QueryParams(), cache_dir=tmp_path)
    assert encoder.calls == [1, 1]
    other = BagOfWordsEncoder(identity="bow-other-weights")
    Q.map_query("cat", other, QueryParams(), cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2


def test_mapping_round_trips_through_json(tmp_path):
    mapping = Q.map_query("not the music, just the dog", BagOfWordsEncoder(), QueryParams(), cache_dir=tmp_path)
    again = Q.QueryMapping.from_dict(json.loads(json.dumps(mapping.to_dict())))
    assert again == mapping and again.exclude[0].name == "Music"
    with pytest.raises(ValueError, match="not a saved query mapping"):
        Q.QueryMapping.from_dict({"exclude": []})


def test_bad_queries_and_encoder_names_give_one_line_errors(tmp_path):
    encoder = BagOfWordsEncoder()
    for text, message in (("   ", "empty"), ("remove", "names no sound"), ("x" * 600, "characters long")):
        with pytest.raises(ValueError, match=message):
            Q.map_query(text, encoder, QueryParams(), cache_dir=tmp_path)
    with pytest.raises(TypeError):
        Q.map_query(None, encoder, QueryParams(), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown text encoder 'bert'.*minilm"):
        Q.encoder_from_name("bert")


def test_clap_encoder_names_its_missing_files(tmp_path, monkeypatch):
    monkeypatch.setenv("EVENTSEP_MODELS", str(tmp_path))
    with pytest.raises(BackendUnavailable) as error:
        Q.encoder_from_name("clap")
    assert "audiosep_base_4M_steps.ckpt" in str(error.value) and str(tmp_path) in str(error.value)
    assert "eventsep models pull audiosep-base" in str(error.value)
    assert "\n" not in str(error.value)


def test_import_loads_no_model():
    code = ("import sys, eventsep.query; "
            "print(any(m.startswith(('sentence_transformers', 'transformers')) for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).parent.parent)
    assert result.stdout.strip() == "False"


def _switch_off(part: str):
    """Undo-able switch for `python tests/test_query.py --parts`: one part of the method turned off."""
    saved = {"bonus": ("CONTAINED_BONUS", 0.0), "spelling": ("correct_spelling", lambda phrase: phrase),
             "aliases": ("aliases", lambda: {}), "speakers": ("speaker_words", lambda: frozenset()),
             "descriptions": ("DESCRIPTION_WEIGHT", 0.0)}[part]
    previous = getattr(Q, saved[0])
    setattr(Q, saved[0], saved[1])
    cached = (Q._exact_table, Q._label_words, Q._label_texts, Q._label_content)

    def clear():
        for function in cached:
            function.cache_clear()
        Q._matrix_cache.clear()
    clear()
    return lambda: (setattr(Q, saved[0], previous), clear())


if __name__ == "__main__":
    import tempfile

    encoder = Q.encoder_from_name("minilm")
    prompts = load_prompts()
    shown = SPLITS
    counts = {split: sum(1 for i in prompts if split in splits_of(i)) for split in shown}
    if "--parts" in sys.argv:
        print("| variant | " + " | ".join(FLOORS) + " | negation right (all) |\n" + "|---" * (len(FLOORS) + 2) + "|")
        for part in (None, "bonus", "spelling", "aliases", "speakers", "descriptions"):
            restore = _switch_off(part) if part else None
            with tempfile.TemporaryDirectory() as folder:
                table = score(prompts, method_predictor(encoder, Path(folder)))
            print(f"| {'full' if part is None else 'no ' + part} | "
                  + " | ".join(f"{table[s][0]:.3f}" for s in FLOORS) + f" | {table['all'][2]:.3f} |")
            if restore:
                restore()
        sys.exit()
    with tempfile.TemporaryDirectory() as folder:
        results = {"eventsep.query": score(prompts, method_predictor(encoder, Path(folder))),
                   "plain cosine": score(prompts, baseline_predictor(encoder))}
    print("| method | split | n | top-1 | top-3 | negation right |\n|---|---|---|---|---|---|")
    for method, table in results.items():
        for split in shown:
            top1, top3, negation = table[split]
            print(f"| {method} | {split} | {counts[split]} | {top1:.3f} | {top3:.3f} | {negation:.3f} |")
    # each fresh set's prompts that no earlier file had word for word (fresh7 repeats 33 older ones)
    seen: set[str] = set()
    unseen = []
    for item in prompts:
        if item["split"] in FRESH_SPLITS and item["query"].lower() not in seen:
            unseen.append({**item, "split": item["split"] + "-new"})
        seen.add(item["query"].lower())
    with tempfile.TemporaryDirectory() as folder:
        for method, predictor in (("eventsep.query", method_predictor(encoder, Path(folder))),
                                  ("plain cosine", baseline_predictor(encoder))):
            table = score(unseen, predictor)
            for split in (f"{s}-new" for s in FRESH_SPLITS):
                n = sum(1 for i in unseen if i["split"] == split)
                print(f"| {method} | {split} | {n} | " + " | ".join(f"{v:.3f}" for v in table[split]) + " |")
