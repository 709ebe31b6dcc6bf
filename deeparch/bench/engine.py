"""Samples/s: the engine, a plain PyTorch loop, a DataLoader loop with per-sample transforms."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from deeparch.data.catalogue import load_dataset
from deeparch.engine.config import TrainConfig
from deeparch.engine.manager import JobManager
from deeparch.engine.threads import run_in_fresh_thread
from deeparch.models import create_model

WARMUP_STEPS = 10
POLL_INTERVAL_S = 0.25  # the engine is measured while a reader polls it four times a second


def _fresh_model(arch: str, info: Any, seed: int) -> torch.nn.Module:

    torch.manual_seed(seed)
    model, _ = create_model(arch, None, info)
    return model.train()


def plain_loop(
    arch: str,
    steps: int,
    batch_size: int,
    seed: int = 0,
    device: str = "cpu",
    channels_last: bool = False,
    bf16: bool = False,
) -> float:
    """A hand-written loop over tensors already on `device`: samples/s.

    `channels_last` stores the model's weights and the batches N, H, W, C in memory; `bf16` runs
    forward and loss under bfloat16 autocast (the update stays in float32).
    """

    data = load_dataset("mnist")
    target = torch.device(device)
    model = _fresh_model(arch, data.info, seed).to(target)
    x, y = data.x_train.to(target), data.y_train.to(target)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches_per_epoch = len(x) // batch_size
    generator = torch.Generator().manual_seed(seed)
    done, started = 0, 0.0
    while done < steps + WARMUP_STEPS:
        order = torch.randperm(len(x), generator=generator).to(target)
        for b in range(batches_per_epoch):
            if done == WARMUP_STEPS:
                _synchronize(target)
                started = time.perf_counter()
            if done == steps + WARMUP_STEPS:
                break
            index = order[b * batch_size : (b + 1) * batch_size]
            with torch.autocast(target.type, dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()  # a real loop logs its loss
            done += 1
    _synchronize(target)
    return steps * batch_size / (time.perf_counter() - started)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _PerSampleTransformDataset(TorchDataset):
    """The usual torchvision pattern, as its MNIST dataset does it: each item becomes a PIL image
    and then goes through transforms.ToTensor(), one sample at a time."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        from torchvision import transforms

        self.images = images  # (N, H, W) uint8
        self.labels = labels
        self.transform = transforms.ToTensor()  # (H, W) uint8 image -> (1, H, W) float in [0, 1]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        image = Image.fromarray(self.images[index], mode="L")
        return self.transform(image), int(self.labels[index])


def dataloader_loop(arch: str, steps: int, batch_size: int, seed: int = 0) -> float:
    """A DataLoader loop with per-sample transforms (a torch Dataset, a DataLoader): samples/s."""

    data = load_dataset("mnist")
    images = (data.x_train[:, 0] * 255).round().to(torch.uint8).numpy()
    dataset = _PerSampleTransformDataset(images, data.y_train.numpy())
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    model = _fresh_model(arch, data.info, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    done, started = 0, 0.0
    while done < steps + WARMUP_STEPS:
        for images_batch, labels_batch in loader:
            if done == WARMUP_STEPS:
                started = time.perf_counter()
            if done == steps + WARMUP_STEPS:
                break
            loss = F.cross_entropy(model(images_batch), labels_batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()
            done += 1
    return steps * batch_size / (time.perf_counter() - started)


def engine_run(
    arch: str,
    steps: int,
    batch_size: int,
    seed: int = 0,
    device: str = "cpu",
    augment: bool = False,
) -> dict[str, float]:
    """The engine, polled by a reader thread: overall and in-step samples/s (with `augment`,
    every batch shifted and rotated on the way in, deeparch.engine.augment)."""

    manager = JobManager(max_running=1, heartbeat_timeout=0)
    config = TrainConfig(
        arch=arch,
        dataset="mnist",
        batch_size=batch_size,
        epochs=1000,
        max_steps=steps,
        seed=seed,
        optimizer="adam",
        lr=1e-3,
        device=device,
        augment=augment,
    )
    job = manager.submit(config)
    polls = 0

    def poll() -> None:
        nonlocal polls
        while not job.wait(POLL_INTERVAL_S):
            job.snapshot()
            polls += 1

    reader = threading.Thread(target=poll, daemon=True)
    reader.start()
    job.wait()
    reader.join()
    snap = job.snapshot()
    if snap["state"] != "finished":
        raise RuntimeError(f"bench job ended {snap['state']}: {snap['reason']}")
    return {
        # Wall time of the whole run: steps, per-epoch evaluation and snapshots.
        "overall": snap["step"] * batch_size / snap["elapsed_s"],
        # Time inside training steps only (batching, forward, backward, update, publishing).
        "in_steps": snap["samples_per_s"],
        "polls": polls,
    }


def run_bench(
    archs: list[str], steps: int, batch_size: int = 64, threads: int = 2, repeats: int = 3
) -> dict[str, dict[str, float]]:
    """Each arch four ways (the engine, the engine augmenting every batch, a plain loop, a
    DataLoader loop), `repeats` rounds interleaved (fair under a varying load); best kept."""
    torch.set_num_threads(threads)
    results: dict[str, dict[str, float]] = {}
    for arch in archs:
        best = {
            "engine": 0.0, "engine_in_steps": 0.0, "plain": 0.0, "dataloader": 0.0,
            "augmented": 0.0,
        }  # fmt: skip
        for _ in range(repeats):
            engine = engine_run(arch, steps, batch_size)
            best["engine"] = max(best["engine"], engine["overall"])
            best["engine_in_steps"] = max(best["engine_in_steps"], engine["in_steps"])
            augmented = engine_run(arch, steps, batch_size, augment=True)
            best["augmented"] = max(best["augmented"], augmented["overall"])
            # Each loop in a thread of its own, as the engine trains in one (engine/threads.py).
            plain = run_in_fresh_thread(plain_loop, arch, steps, batch_size, name="bench-plain")
            loader = run_in_fresh_thread(
                dataloader_loop, arch, steps, batch_size, name="bench-dataloader"
            )
            best["plain"] = max(best["plain"], plain)
            best["dataloader"] = max(best["dataloader"], loader)
        best["engine_vs_plain"] = best["engine"] / best["plain"]
        best["engine_vs_dataloader"] = best["engine"] / best["dataloader"]
        # What augmentation costs: the engine's samples/s with it over without, same rounds.
        best["augmented_vs_engine"] = best["augmented"] / best["engine"]
        results[arch] = best
    return results
