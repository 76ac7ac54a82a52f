"""Prefect tasks: a thin, cached wrapper around each stage of `eventsep.pipeline`."""
