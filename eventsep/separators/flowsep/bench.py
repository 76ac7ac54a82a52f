"""Seconds per 10.24 s window of FlowSep (random weights) by ODE step count, on the CPU and on CUDA if present.

Each window costs the mixture's encoding, `steps` UNet evaluations, the decoding and the vocoder. The
table times each part on its own and a whole window end to end, so that the per-step cost and the
fixed cost are both visible.
"""

from __future__ import annotations

import time

import torch

from .model import MINI, OFFICIAL, FlowSep


def _timed(function, device: str, warm_up: bool = True) -> float:
    if warm_up:  # allocations, kernel selection
        function()
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    function()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def bench_model(name: str, config, device: str, steps: tuple[int, ...], dtype: torch.dtype = torch.float32) -> list[str]:
    torch.manual_seed(0)
    model = FlowSep(config).eval().to(device)
    window = int(config.window_seconds * config.sample_rate)
    wave = (torch.randn(1, window) * 0.1).to(device)
    context_dim = config.unet.context_dim
    context = torch.randn(1, 50 if config.vae else 1, context_dim, device=device)
    autocast = torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32)
    rows = []
    with torch.inference_mode(), autocast:
        mixture_mel = model.frontend.log_mel(wave)[:, None]
        latent = model.encode(mixture_mel)
        parts = {"encode": lambda: model.encode(mixture_mel),
                 "one UNet step": lambda: model.velocity(latent, torch.zeros(1, device=device), latent, context),
                 "decode": lambda: model.decode(latent)}
        if model.vocoder is not None:
            mel = model.decode(latent)
            parts["vocoder"] = lambda: model.vocoder(mel[:, 0].transpose(1, 2))
        for part, function in parts.items():
            rows.append(f"| {name} | {device} {str(dtype).removeprefix('torch.')} | {part} | {_timed(function, device):.3f} |")
        for count in steps:
            # every part already ran once at these shapes: no second warm-up
            seconds = _timed(lambda: model.separate(wave, context, steps=count), device, warm_up=False)
            rows.append(f"| {name} | {device} {str(dtype).removeprefix('torch.')} | whole window, {count} steps | "
                        f"{seconds:.3f} |")
    return rows


def bench(steps: tuple[int, ...] = (1, 10, 20), official: bool = True) -> str:
    rows = ["| model | device | part | seconds per 10.24 s window |", "|---|---|---|---:|"]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        rows += bench_model("mini", MINI, device, steps)
        if official:
            rows += bench_model("official size", OFFICIAL, device, steps)
            if device == "cuda":
                rows += bench_model("official size", OFFICIAL, device, steps, torch.bfloat16)
    return "\n".join(rows)
