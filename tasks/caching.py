"""How Prefect caches EventSep stages: content keys, a safetensors serializer, atomic result files, owned locks.

Prefect keeps a result as a payload file plus a metadata record. Here the payload *is* the
`eventsep.store` file `<results>/<stage key>`, and the record is derived from it on every lookup
(`PayloadRecords`): a record exists exactly when a complete payload that passes its checksum does.
So a deleted, truncated or damaged result file is recomputed instead of failing (a damaged one is
named in a warning), and results written by `eventsep.separate` without Prefect are cache hits for
the flows, and the other way round.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from prefect import task
from prefect.cache_policies import CachePolicy
from prefect.filesystems import WritableFileSystem
from prefect.results import ResultRecordMetadata
from prefect.serializers import Serializer
from pydantic import Field

from eventsep import pipeline
from eventsep.locks import OwnedFileLockManager
from eventsep.settings import Settings, settings
from eventsep.store import ResultStore, StageResult, decode, encode


class StageResultSerializer(Serializer):
    """StageResult <-> safetensors bytes; never unpickles."""

    type: str = Field(default="eventsep-stage-result", frozen=True)

    def dumps(self, obj: StageResult) -> bytes:
        return encode(obj)

    def loads(self, blob: bytes) -> StageResult:
        return decode(blob)


def _key_of(path: str) -> str:
    return str(path).rstrip("/").rsplit("/", 1)[-1]


class ResultFiles(WritableFileSystem):
    """The payload side: `eventsep.store.ResultStore` as a Prefect storage block (atomic writes, fsspec)."""

    _block_type_name = "EventSep result files"
    url: str

    @property
    def store(self) -> ResultStore:
        return ResultStore(self.url, settings().cache_max_bytes)

    def _resolve_path(self, path: str) -> str:
        return self.store.path(path) if path else self.store.path("").rstrip("/")

    def read_path(self, path: str, _sync: bool | None = None) -> bytes:
        blob = self.store.read_bytes(_key_of(path))
        if blob is None:
            raise FileNotFoundError(f"no result file {path}")
        return blob

    async def aread_path(self, path: str) -> bytes:
        return self.read_path(path)

    def write_path(self, path: str, content: bytes, _sync: bool | None = None) -> str:
        self.store.write_bytes(_key_of(path), content)
        return path

    async def awrite_path(self, path: str, content: bytes) -> str:
        return self.write_path(path, content)


class PayloadRecords(WritableFileSystem):
    """The record side: answers with metadata exactly when a complete payload exists; stores nothing."""

    _block_type_name = "EventSep payload records"
    url: str

    def read_path(self, path: str, _sync: bool | None = None) -> bytes | None:
        files = ResultFiles(url=self.url)
        key = _key_of(path)
        # Check the whole payload here (size, checksum over arrays and metadata, key): a damaged one is
        # deleted and named in one warning line, and the task recomputes instead of failing on it.
        if files.store.load(key) is None:
            return None
        return ResultRecordMetadata(storage_key=files._resolve_path(key),
                                    serializer=StageResultSerializer()).dump_bytes()

    async def aread_path(self, path: str) -> bytes | None:
        return self.read_path(path)

    def write_path(self, path: str, content: bytes, _sync: bool | None = None) -> str:
        return path

    async def awrite_path(self, path: str, content: bytes) -> str:
        return path


def stage_policy(stage: str, config: Settings) -> CachePolicy:
    """Cache key = the stage's content key; serializable isolation with locks that die with their owner."""

    def key(_context: Any, inputs: dict[str, Any]) -> str:
        return pipeline.STAGES[stage].key(**inputs)

    return CachePolicy.from_cache_key_fn(key).configure(
        key_storage=PayloadRecords(url=config.results_url),
        lock_manager=OwnedFileLockManager(config.locks_dir),
        isolation_level="SERIALIZABLE")


def stage_task(stage: str, config: Settings, function: Callable) -> Any:
    """A Prefect task that caches `function` (which returns a StageResult) under `stage`'s content key."""
    cached = task(function, name=stage, cache_policy=stage_policy(stage, config), persist_result=True,
                  result_serializer=StageResultSerializer(), cache_result_in_memory=False)
    # Prefect refuses an unsaved storage block at decoration time but uses one as it is at run time;
    # saving a block would need a server round-trip and leave one block per result location behind.
    cached.result_storage = ResultFiles(url=config.results_url)
    return cached


def stage_tasks(config: Settings) -> dict[str, Any]:
    """One cached task per stage of `eventsep.pipeline`, for this result store and lock folder."""
    return _stage_tasks(config.results_url, str(config.locks_dir))


@lru_cache(maxsize=8)
def _stage_tasks(results_url: str, locks_dir: str) -> dict[str, Any]:
    config = Settings(results=results_url, cache=Path(locks_dir).parent)
    return {name: stage_task(name, config, stage.compute) for name, stage in pipeline.STAGES.items()}
