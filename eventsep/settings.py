"""Where EventSep keeps things: cache, result store, model folder and locks, from EVENTSEP_* environment variables."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """`EVENTSEP_CACHE` (default ./cache), `EVENTSEP_RESULTS` (a folder or fsspec URL such as
    s3://team-bucket/eventsep; default <cache>/results), `EVENTSEP_MODELS` (default <cache>/models),
    `EVENTSEP_CACHE_MAX` (a size such as 2GB or 500MB: a local result store is kept under it by deleting
    the least recently used results; default none), `EVENTSEP_WEIGHTS` (other weights for the project's own
    models, "audiosep-mini=FILE[,flowsep-mini=FILE]": eventsep.pretrained.overrides)."""

    model_config = SettingsConfigDict(env_prefix="EVENTSEP_", extra="ignore")

    cache: Path = Path("cache")
    results: str | None = None
    models: Path | None = None
    cache_max: str | None = None
    weights: str | None = None

    @property
    def cache_dir(self) -> Path:
        return self.cache.expanduser().resolve()

    @property
    def results_url(self) -> str:
        if self.results:
            return self.results if "://" in self.results else str(Path(self.results).expanduser().resolve())
        return str(self.cache_dir / "results")

    @property
    def models_dir(self) -> Path:
        return (self.models or self.cache_dir / "models").expanduser().resolve()

    @property
    def cache_max_bytes(self) -> int | None:
        """`EVENTSEP_CACHE_MAX` in bytes (None: no limit); a bad value is one ValueError line."""
        return parse_size(self.cache_max, "EVENTSEP_CACHE_MAX")

    @property
    def locks_dir(self) -> Path:
        """Locks are always local: they coordinate the processes of one machine."""
        return self.cache_dir / "locks"


def settings() -> Settings:
    """Read the settings afresh, so a changed environment (tests, CLI options) takes effect."""
    return Settings()


# Decimal units as disk makers count (1 GB = 10**9 bytes), binary ones with an "i" (1 GiB = 2**30 bytes).
_UNITS = {"": 1, "B": 1, "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9, "GB": 10**9,
          "T": 10**12, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(text: str | None, name: str) -> int | None:
    """"2GB", "500MB", "1.5GiB" or a plain byte count -> bytes; empty or None -> None (no limit)."""
    if text is None or not str(text).strip():
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*", str(text))
    unit = match and match.group(2).upper()
    if not match or unit not in _UNITS or float(match.group(1)) <= 0:
        raise ValueError(f"{name}={text!r} is not a size: use a positive number with B, KB, MB, GB, TB "
                         "(or KiB, MiB, GiB, TiB), e.g. 2GB")
    return int(float(match.group(1)) * _UNITS[unit])
