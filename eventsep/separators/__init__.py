"""Separators: AudioSep (ResUNet30 + text FiLM) and FlowSep (text-conditioned rectified flow)."""
