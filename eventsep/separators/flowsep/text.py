"""FlowSep's text context: FLAN-T5-large hidden states padded to 50 tokens (official), or the MiniLM
query embedding as a one-token sequence (mini)."""

from __future__ import annotations

import numpy as np
import torch

CONTEXT_TOKENS = 50


class T5TextEncoder:
    """`context(text)` -> (hidden states (1, 50, 1024), attention mask (1, 50)), as FlowSep's FlanT5HiddenState."""

    def __init__(self, model, tokenizer=None):
        self.model = model.eval()
        self.tokenizer = tokenizer

    @classmethod
    def build(cls) -> "T5TextEncoder":
        """FLAN-T5-large's encoder with random weights, for a strict load; the tokenizer comes on first use."""
        from transformers import T5EncoderModel

        from .model import flan_t5_large_config

        return cls(T5EncoderModel(flan_t5_large_config()))

    def context(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        if self.tokenizer is None:
            from ...pretrained import locate

            from transformers import T5TokenizerFast

            self.tokenizer = T5TokenizerFast(tokenizer_file=str(locate("flan-t5-large-tokenizer")))
        batch = self.tokenizer([text], max_length=CONTEXT_TOKENS, padding="max_length", truncation=True,
                               return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)[0]
        return hidden, batch.attention_mask


class SentenceContext:
    """The mini model's context: one token, the sentence embedding of the query (MiniLM, 384-d)."""

    def __init__(self, encoder):
        self.encoder = encoder

    def context(self, text: str) -> tuple[torch.Tensor, None]:
        vector = np.asarray(self.encoder.encode([text])[0], dtype=np.float32)
        return torch.from_numpy(vector)[None, None], None
