"""CLAP text branch: the official key set, prefix handling, and padding only to the query's own length."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from eventsep.pretrained import check_state
from eventsep.separators.audiosep.clap_text import ClapText, ClapTextEncoder, roberta_base_config, text_state

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "audiosep_ss_model_state_dict.json"


def test_full_size_text_branch_matches_the_reference_keys():
    keys = json.loads(REFERENCE.read_text())["query_encoder_keys"]
    expected = {k[len("query_encoder.model."):]: v for k, v in keys.items()
                if k.startswith(("query_encoder.model.text_branch.", "query_encoder.model.text_projection."))}
    ours = {k: list(v.shape) for k, v in ClapText().state_dict().items()}
    assert ours == expected


def byte_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes (as in GPT-2 and RoBERTa)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    extra = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(extra))]


def tiny_files(folder: Path) -> tuple[Path, Path]:
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for symbol in byte_alphabet():
        vocab.setdefault(symbol, len(vocab))
    vocab["do"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\nd o\n")
    return folder / "vocab.json", folder / "merges.txt"


@pytest.fixture
def tiny_encoder(tmp_path):
    torch.manual_seed(0)
    config = roberta_base_config(vocab_size=300, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=32)
    tiny_files(tmp_path)
    return ClapTextEncoder.from_folder(tmp_path, ClapText(config, embed_dim=8), "tiny")


def test_query_is_padded_to_its_own_length_and_padding_does_not_change_it(tiny_encoder):
    tokens = tiny_encoder.tokenizer(["dog"], padding="longest", return_tensors="pt")
    assert tokens["input_ids"].shape[1] == 4  # <s> do g </s>, not 512
    alone = tiny_encoder.encode(["dog"])
    batched = tiny_encoder.encode(["dog", "a much longer query about birds"])
    np.testing.assert_allclose(alone[0], batched[0], atol=1e-5)
    assert np.linalg.norm(alone[0]) == pytest.approx(1.0, abs=1e-5)


def test_checkpoint_prefix_is_removed_and_position_ids_dropped():
    model = ClapText(roberta_base_config(vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=32), embed_dim=8)
    weights = {f"query_encoder.model.{k}": v for k, v in model.state_dict().items()}
    weights["query_encoder.model.text_branch.embeddings.position_ids"] = torch.arange(514)[None]
    weights["query_encoder.model.audio_branch.bn0.weight"] = torch.ones(64)
    weights["ss_model.base.bn0.weight"] = torch.ones(1025)
    state = text_state(weights)
    check_state(model, state, "test")  # raises on any mismatch
    assert not any(k.startswith("audio_branch") for k in state)
