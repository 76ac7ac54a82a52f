"""Training flow for the mini separators: resumable rounds, progress in the flow's log, export when asked."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from eventsep.separators.training import config_with, trainer


@task(name="train_round", cache_policy=NO_CACHE)
def train_round(model: str, folder: str, minutes: float, warm_start: bool, config: dict) -> dict:
    from eventsep.separators.training import warm_start_weights

    logger = get_run_logger()
    module = trainer(model)
    return module.train(folder, minutes, config_with(module.DEFAULTS, config),
                        progress=lambda row: logger.warning("%s", row),
                        warm_start=warm_start_weights(model, not warm_start))


@flow(name="train-mini-separator", log_prints=True)
def train_mini_separator(model: str = "audiosep-mini", folder: str | None = None, minutes: float = 60.0,
                         rounds: int = 1, export: bool = False, warm_start: bool = True,
                         config: dict | None = None) -> dict:
    """Train `rounds` × `minutes / rounds`, continuing from the folder's checkpoint (or, without one and with
    `warm_start`, from the packaged weights); validate after each round. `config` changes TrainConfig fields."""
    folder = folder or f"cache/training/{model}"
    config_with(trainer(model).DEFAULTS, config or {})  # an unknown model or setting fails before a round
    state = {}
    for _ in range(rounds):
        state = train_round(model, folder, minutes / rounds, warm_start, config or {})
    if export:
        from eventsep.pretrained import packaged_path
        from eventsep.separators.training import export as export_weights

        print(f"exported {export_weights(folder, packaged_path(model))}")
    return state
