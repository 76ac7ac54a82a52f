"""Prefect flows (separate, batch, refuse) and the `eventsep` command line that starts them."""
