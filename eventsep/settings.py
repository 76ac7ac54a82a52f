"""Where EventSep keeps things: cache, result store, model folder and locks, from EVENTSEP_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """`EVENTSEP_CACHE` (default ./cache), `EVENTSEP_RESULTS` (a folder or fsspec URL such as
    s3://team-bucket/eventsep; default <cache>/results), `EVENTSEP_MODELS` (default <cache>/models)."""

    model_config = SettingsConfigDict(env_prefix="EVENTSEP_", extra="ignore")

    cache: Path = Path("cache")
    results: str | None = None
    models: Path | None = None

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
    def locks_dir(self) -> Path:
        """Locks are always local: they coordinate the processes of one machine."""
        return self.cache_dir / "locks"


def settings() -> Settings:
    """Read the settings afresh, so a changed environment (tests, CLI options) takes effect."""
    return Settings()
