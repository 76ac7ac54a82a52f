"""Dask worker preload for the tests: registers the stand-in backends in every worker process.

Named in the test's Dask configuration (`distributed.worker.preload`), which a LocalCluster's nannies
hand to the worker processes they start; the stand-ins stay out of the library and the command line.
"""

import os
from pathlib import Path

from standins import register_all

WEIGHTS_VARIABLE = "EVENTSEP_TEST_STANDIN_WEIGHTS"


def dask_setup(worker) -> None:
    register_all(Path(os.environ[WEIGHTS_VARIABLE]))
