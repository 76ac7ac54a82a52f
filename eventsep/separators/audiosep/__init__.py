"""AudioSep: the ResUNet30 separator conditioned on a text embedding, official weights or the mini model."""
