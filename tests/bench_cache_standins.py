"""`eventsep bench cache` with the test stand-in separators, for before real separators exist.

The re-fuse figures do not depend on the separators: re-fusion reads their cached outputs.
Run: python tests/bench_cache_standins.py [AUDIO] [QUERY]
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from flows.cli import EXAMPLE, EXAMPLE_QUERY, prepare_prefect_environment  # noqa: E402

prepare_prefect_environment()

from eventsep.api import make_options  # noqa: E402
from flows.bench import main  # noqa: E402
from standins import STANDIN_OPTIONS, register_all  # noqa: E402

if __name__ == "__main__":
    register_all(Path(tempfile.mkdtemp(prefix="standin-weights-")))
    audio = sys.argv[1] if len(sys.argv) > 1 else str(EXAMPLE)
    query = sys.argv[2] if len(sys.argv) > 2 else EXAMPLE_QUERY
    print(main(audio, query, make_options(STANDIN_OPTIONS)))
