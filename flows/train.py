"""Training flow for the mini AudioSep: resumable rounds, progress in the flow's log, export when asked."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE


@task(name="train_round", cache_policy=NO_CACHE)
def train_round(folder: str, minutes: float, warm_start: bool) -> dict:
    from eventsep.separators.audiosep.train import train, warm_start_weights

    logger = get_run_logger()
    return train(folder, minutes, progress=lambda row: logger.warning("%s", row),
                 warm_start=warm_start_weights(not warm_start))


@flow(name="train-audiosep-mini", log_prints=True)
def train_audiosep_mini(folder: str = "cache/training/audiosep-mini", minutes: float = 60.0,
                        rounds: int = 1, export: bool = False, warm_start: bool = True) -> dict:
    """Train `rounds` × `minutes / rounds`, continuing from the folder's checkpoint (or, without one and with
    `warm_start`, from the packaged weights); validate after each round."""
    state = {}
    for _ in range(rounds):
        state = train_round(folder, minutes / rounds, warm_start)
    if export:
        from eventsep.pretrained import path_of
        from eventsep.separators.audiosep.train import export as export_weights

        print(f"exported {export_weights(folder, path_of('audiosep-mini'))}")
    return state
