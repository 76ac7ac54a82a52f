"""The model cards' figures: per-family SI-SDRi of the packaged mini AudioSep and mini FlowSep on the training
validation items (corpus seeds 100000-100019, 4 s, 0 dB, each item's first prompt: the set of docs/audiosep.md
and docs/flowsep.md), and the target-class clip counts of the training seeds.

    python scripts/card_validation.py [audiosep-mini] [flowsep-mini] [classes]
"""
import json
import sys

import numpy as np
import torch

from eventsep.cards import FAMILIES
from eventsep.corpus.sources import ALL_KINDS

VALIDATION_SEEDS = range(100_000, 100_020)


def family_stats(rows):
    out = {}
    for family in ("speech", "music", "environment", "all"):
        scores = np.array([s for f, s in rows if family in ("all", f)])
        out[family] = ({"mean": round(float(scores.mean()), 2), "median": round(float(np.median(scores)), 2),
                        "n": int(len(scores))} if len(scores) else {"mean": None, "median": None, "n": 0})
    return out


def items(sample_rate):
    from eventsep.corpus import make_mixture

    return [make_mixture(seed, sample_rate=sample_rate, seconds=4.0) for seed in VALIDATION_SEEDS]


def audiosep_rows():
    from eventsep import backends, pretrained
    from eventsep.metrics import si_sdr_improvement

    model, _ = pretrained.load_mini_audiosep()
    model.eval()
    encoder = backends.get("text_encoder", "minilm")
    rows = []
    with torch.inference_mode():
        for m in items(model.config.sample_rate):
            condition = torch.from_numpy(encoder.encode([m.prompts[0]]))
            estimate = model(torch.from_numpy(m.mixture)[None, None], condition)[0, 0].numpy()
            score = float(si_sdr_improvement(estimate, m.target, m.mixture))
            rows.append((FAMILIES[ALL_KINDS[m.target_kind].family], score))
            print(m.seed, m.target_kind, m.prompts[0], round(score, 2), flush=True)
    return rows


def flowsep_rows(steps=10):
    from eventsep import backends, pretrained
    from eventsep.metrics import si_sdr_improvement

    model, _ = pretrained.load_mini_flowsep()
    model.eval()
    encoder = backends.get("text_encoder", "minilm")
    block = model.frontend.hop * 8
    rows = []
    with torch.inference_mode():
        for m in items(model.config.sample_rate):
            padded = np.pad(m.mixture, (0, -len(m.mixture) % block)).astype(np.float32)
            context = torch.from_numpy(encoder.encode([m.prompts[0]]))[None]
            estimate = model.separate(torch.from_numpy(padded)[None], context, steps=steps,
                                      generator=torch.Generator().manual_seed(0))[0, : len(m.mixture)].numpy()
            score = float(si_sdr_improvement(estimate, m.target, m.mixture))
            rows.append((FAMILIES[ALL_KINDS[m.target_kind].family], score))
            print(m.seed, m.target_kind, m.prompts[0], round(score, 2), flush=True)
    return rows


if __name__ == "__main__":
    torch.set_num_threads(1)
    wanted = sys.argv[1:] or ["audiosep-mini", "flowsep-mini", "classes"]
    out = {}
    if "audiosep-mini" in wanted:
        out["audiosep-mini"] = family_stats(audiosep_rows())
    if "flowsep-mini" in wanted:
        out["flowsep-mini"] = family_stats(flowsep_rows())
    if "classes" in wanted:
        from eventsep.separators.audiosep.train import DEFAULTS
        from eventsep.separators.training import target_classes

        seeds = range(*DEFAULTS.train_seeds)
        out[f"classes seeds {seeds.start}-{seeds.stop - 1}, recorded share {DEFAULTS.recorded_share}"] = (
            target_classes(seeds, DEFAULTS.recorded_share))
    print(json.dumps(out, indent=1))
