"""Fit and measure YAMNet's calibration on corpus seeds: frame F1 of the target class before and after.

`python -m eventsep.sed.calibrate` prints the table in docs/sed.md. Dev seeds fit, test seeds
(never used to fit) measure. Truth per frame: the frame centre lies inside the target's active part.
"""

from __future__ import annotations

import sys

import numpy as np

from ..corpus import make_mixture
from ..ontology import by_name
from .yamnet import FRAME_SECONDS, YamnetSed

DEV, TEST = range(1000, 1040), range(2000, 2040)


def collect(seeds) -> list[tuple[np.ndarray, np.ndarray]]:
    """(target-class logit track, truth) per mixture."""
    model = YamnetSed(calibrated=False)
    rows = []
    for seed in seeds:
        item = make_mixture(seed, sample_rate=16000)
        probs = model.detect(item.mixture, item.sample_rate).probs[:, by_name(item.target_label).index]
        centres = np.arange(len(probs)) * FRAME_SECONDS
        logits = np.log(np.clip(probs, 1e-7, 1 - 1e-7) / np.clip(1 - probs, 1e-7, 1))
        rows.append((logits, (centres >= item.onset) & (centres < item.offset)))
    return rows


def f1(rows, transform, threshold: float = 0.5) -> float:
    tp = fp = fn = 0
    for logits, truth in rows:
        detected = transform(logits) >= threshold
        tp += np.sum(detected & truth)
        fp += np.sum(detected & ~truth)
        fn += np.sum(~detected & truth)
    return float(2 * tp / max(2 * tp + fp + fn, 1))


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def max_normalised(logits):
    probs = sigmoid(logits)
    return probs / max(probs.max(), 1e-6)


def fit_affine(rows) -> tuple[float, float]:
    """The (scale, bias) on the logit that maximises dev frame F1 at p >= 0.5 (a grid search)."""
    best = (-1.0, 1.0, 0.0)
    for scale in (0.05, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 0.75, 1.0):
        for bias in np.arange(-2.0, 10.01, 0.25):
            score = f1(rows, lambda x: sigmoid(scale * x + bias))
            if score > best[0]:
                best = (score, scale, float(bias))
    return best[1], best[2]


def main() -> None:
    dev, test = collect(DEV), collect(TEST)
    scale, bias = fit_affine(dev)
    rows = [("raw YAMNet", lambda x: sigmoid(x)),
            ("per-recording max-normalised", max_normalised),
            (f"logit affine, scale {scale:g}, bias {bias:g} (fitted on dev)", lambda x: sigmoid(scale * x + bias))]
    print("| calibration | dev F1 | test F1 |\n|---|---:|---:|")
    for name, transform in rows:
        print(f"| {name} | {f1(dev, transform):.3f} | {f1(test, transform):.3f} |")
    aucs = []
    for logits, truth in test:
        if truth.any() and (~truth).any():
            ranks = np.argsort(np.argsort(logits))
            aucs.append((ranks[truth].mean() - (truth.sum() - 1) / 2) / (~truth).sum())
    print(f"\nper-item ROC-AUC on test (ties broken by order): {np.mean(aucs):.3f} over {len(aucs)} items",
          file=sys.stdout)


if __name__ == "__main__":
    main()
