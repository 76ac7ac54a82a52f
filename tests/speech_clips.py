"""Test helpers for the speech models: an espeak-ng voice, trimmed to where it sounds; two concurrent calls."""

import subprocess
import threading

import numpy as np

from eventsep.audio import load_audio


def espeak(folder, voice: str, text: str, rate: int) -> np.ndarray:
    """espeak-ng speaking `text` at `rate`, from its first to its last sample above 0.01, peak 1."""
    path = folder / "speech.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    samples = load_audio(path, rate).samples
    samples = samples[np.argmax(np.abs(samples) > 0.01):]
    samples = samples[: len(samples) - np.argmax(np.abs(samples[::-1]) > 0.01)]
    return samples / np.abs(samples).max()


def same_in_two_threads(function, inputs) -> bool:
    """Whether function(inputs[0]) and function(inputs[1]), called at once from two threads, give exactly the
    arrays they give one after another."""
    alone = [function(x) for x in inputs]
    results = [None, None]

    def work(index):
        results[index] = function(inputs[index])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return all(np.array_equal(a, b) for a, b in zip(alone, results))
