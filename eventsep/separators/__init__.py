"""Separators: AudioSep (ResUNet30 + text FiLM) and, later, FlowSep."""
