"""EventSep: separate the sound a text query describes from a recording, and find when it happens.

`eventsep.separate(audio, query)` and `eventsep.refuse(audio, query, grid)` are the public surface;
they are imported on first use so that `import eventsep` stays cheap.
"""

__all__ = ["separate", "refuse"]


def __getattr__(name):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'eventsep' has no attribute {name!r}")
