"""CLAP's text branch as AudioSep uses it: RoBERTa-base (pooled output) → 768→512→512 projection → L2 norm.

Built from a config written here (no hub download); weights come from the AudioSep checkpoint's
`query_encoder.model.text_branch.*` and `text_projection.*`; the tokenizer from roberta-base's
`vocab.json` and `merges.txt` in the model folder. A query is padded only to its own length:
the official code pads every query to 512 tokens, about 40× slower for a short query.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

TEXT_PREFIX = "query_encoder.model."
# transformers < 4.31 saved this buffer; it is a fixed arange, rebuilt by the model itself.
OPTIONAL_KEYS = ("text_branch.embeddings.position_ids",)


def roberta_base_config(**overrides):
    from transformers import RobertaConfig

    values = dict(vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                  intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                  bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5, hidden_act="gelu")
    values.update(overrides)
    return RobertaConfig(**values)


class ClapText(nn.Module):
    def __init__(self, config=None, embed_dim: int = 512):
        super().__init__()
        from transformers import RobertaModel

        config = config or roberta_base_config()
        self.text_branch = RobertaModel(config, add_pooling_layer=True)
        width = config.hidden_size
        self.text_projection = nn.Sequential(nn.Linear(width, embed_dim), nn.ReLU(), nn.Linear(embed_dim, embed_dim))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.text_branch(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return nn.functional.normalize(self.text_projection(pooled), dim=-1)


def text_state(checkpoint_weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The text-branch and projection tensors of an AudioSep checkpoint, with CLAP's prefix removed."""
    wanted = ("text_branch.", "text_projection.")
    state = {k[len(TEXT_PREFIX):]: v for k, v in checkpoint_weights.items()
             if k.startswith(TEXT_PREFIX) and k[len(TEXT_PREFIX):].startswith(wanted)}
    return {k: v for k, v in state.items() if k not in OPTIONAL_KEYS}


class ClapTextEncoder:
    """Text → 512-d unit vector, the condition of the official AudioSep."""

    name = "clap"
    dim = 512

    def __init__(self, model: ClapText, tokenizer, identity: str):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self._identity = identity

    @classmethod
    def from_folder(cls, folder: Path, model: ClapText, identity: str) -> "ClapTextEncoder":
        """`folder` holds roberta-base's vocab.json and merges.txt; nothing is fetched."""
        from transformers import RobertaTokenizer

        return cls(model, RobertaTokenizer.from_pretrained(str(folder), local_files_only=True), identity)

    def identity(self) -> str:
        return self._identity

    def encode(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(list(texts), padding="longest", truncation=True, max_length=512,
                                return_tensors="pt")
        with torch.inference_mode():
            return self.model(tokens["input_ids"], tokens["attention_mask"]).numpy().astype(np.float32)
