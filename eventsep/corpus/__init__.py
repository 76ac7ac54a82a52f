"""The open test corpus: realistic mixtures rendered offline from Debian and PyPI packages, seeded.

`make_mixture(seed)` gives a two-source mixture with its ground truth, labels and prompts;
`make_corpus(folder, seeds)` writes many. Run `python -m eventsep.corpus OUT --seeds 0-19`.
"""

from .mixtures import Mixture, make_corpus, make_mixture, write_mixture
from .sources import ALL_KINDS, CorpusToolMissing

__all__ = ["ALL_KINDS", "CorpusToolMissing", "Mixture", "make_corpus", "make_mixture", "write_mixture"]
