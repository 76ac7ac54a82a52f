"""Prefect deployments of the EventSep flows (on upload, on a schedule, on demand)."""
