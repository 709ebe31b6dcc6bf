"""The GPU check: each CUDA path of the engine run once, measured, in one JSON report.

Built and tested on the CPU (the CUDA parts then say why they were skipped), so that the few
minutes of a lent GPU are spent on the run itself (scripts/gpu_check.py). Every part returns a
dict; `ok` is False where the part ran and found something wrong.
"""

from __future__ import annotations

import gc
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from deeparch.bench.engine import engine_run, plain_loop
from deeparch.engine.callbacks import Callback
from deeparch.engine.config import TrainConfig, train_defaults
from deeparch.engine.evaluate import evaluate_checkpoint
from deeparch.engine.manager import JobManager
from deeparch.engine.state import JobState
from deeparch.models import list_archs

WAIT_S = 600
# Adversarial losses trade places by design: a GAN's loss need not fall in a few steps.
LOSS_NEED_NOT_FALL = {"gan": "adversarial losses trade places; they need not fall"}
ENGINE_VS_PLAIN_TARGET = 0.95  # the engine's overhead over a hand-written loop, as on the CPU
TOO_MUCH = 1 << 44  # 16 TiB: more than any one device holds


def cuda_skip() -> str:
    """Why the CUDA parts cannot run here, or '' where they can."""
    return "" if torch.cuda.is_available() else "no CUDA device visible to PyTorch here"


def environment() -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    return {
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu only",
        "cpu_count": os.cpu_count(),
        "load_average": _load_average(),
    }


def _load_average() -> list[float]:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def _manager(max_running: int = 1) -> JobManager:
    return JobManager(max_running=max_running, heartbeat_timeout=0)


def _finished(job) -> dict[str, Any]:
    if not job.wait(WAIT_S):
        job.stop()
        job.wait(WAIT_S)
    return job.snapshot()


def _loss_falls(snap: dict[str, Any]) -> bool:
    values = [value for _, value in snap["losses"].get("loss", []) if math.isfinite(value)]
    window = max(1, len(values) // 4)
    return len(values) >= 2 and sum(values[-window:]) < sum(values[:window])


def defaults_on_devices(
    steps: int, devices: list[str], archs: list[str] | None = None
) -> dict[str, Any]:
    """Every architecture's one-click defaults for `steps` steps on each device, same seed."""
    rows: dict[str, Any] = {}
    ok = True
    for arch in archs or list_archs():
        row: dict[str, Any] = {}
        for device in devices:
            values = {**train_defaults(arch), "arch": arch, "max_steps": steps, "device": device}
            snap = _finished(_manager().submit(TrainConfig.from_dict({**values, "seed": 0})))
            falls = _loss_falls(snap)
            excuse = LOSS_NEED_NOT_FALL.get(snap["task"], "")
            row[device] = {
                "state": snap["state"],
                "reason": snap["reason"],
                "samples_per_s": round(float(snap["samples_per_s"] or 0.0), 1),
                "loss_falls": falls,
                **({"loss_need_not_fall": excuse} if excuse else {}),
            }
            ok &= snap["state"] == JobState.FINISHED.value and (falls or bool(excuse))
        if len(devices) == 2 and all(row[d]["samples_per_s"] for d in devices):
            row["ratio"] = round(
                row[devices[0]]["samples_per_s"] / row[devices[1]]["samples_per_s"], 2
            )
        rows[arch] = row
    return {"ok": ok, "steps": steps, "devices": devices, "archs": rows}


def engine_against_plain(steps: int, batch_size: int, device: str) -> dict[str, Any]:
    """The engine against a hand-written loop on the same tensors, and the plain loop's variants:
    channels-last (the CNN) and bfloat16 autocast, to say which is faster here."""
    rows: dict[str, Any] = {}
    for arch in ("mlp", "cnn"):
        engine = engine_run(arch, steps, batch_size, device=device)["overall"]
        variants = {"fp32": plain_loop(arch, steps, batch_size, device=device)}
        if arch == "cnn":
            variants["channels_last"] = plain_loop(
                arch, steps, batch_size, device=device, channels_last=True
            )
        if device == "cuda" and torch.cuda.is_bf16_supported():
            variants["bf16_autocast"] = plain_loop(
                arch, steps, batch_size, device=device, bf16=True
            )
        rows[arch] = {
            "engine": round(engine, 1),
            "plain": {name: round(value, 1) for name, value in variants.items()},
            "engine_vs_plain": round(engine / variants["fp32"], 3),
            "engine_vs_fastest_plain": round(engine / max(variants.values()), 3),
            "fastest_plain": max(variants, key=variants.get),
        }
    # A target, not a fault: measured on a loaded machine it may miss, and the report says so.
    meets_target = all(row["engine_vs_plain"] >= ENGINE_VS_PLAIN_TARGET for row in rows.values())
    return {
        "ok": True,
        "meets_target": meets_target,
        "device": device,
        "steps": steps,
        "batch_size": batch_size,
        "archs": rows,
    }


def concurrent_jobs(steps: int, device: str, jobs: int = 4) -> dict[str, Any]:
    """`jobs` CNNs training at once on one device, against one alone."""

    def config(seed: int) -> TrainConfig:
        values = {**train_defaults("cnn"), "arch": "cnn", "max_steps": steps, "device": device}
        return TrainConfig.from_dict({**values, "seed": seed, "epochs": 1000})

    alone = _finished(_manager().submit(config(0)))["samples_per_s"]
    manager = _manager(max_running=jobs)
    together = [manager.submit(config(seed)) for seed in range(jobs)]
    rates = [float(_finished(job)["samples_per_s"]) for job in together]
    return {
        "ok": all(job.state == JobState.FINISHED.value for job in together),
        "device": device,
        "alone": round(float(alone), 1),
        "each": [round(rate, 1) for rate in rates],
        "total": round(sum(rates), 1),
        "total_vs_alone": round(sum(rates) / float(alone), 2),
    }


class _AllocateTooMuch(Callback):
    """Asks the device for more memory than it has, inside a training step's hooks."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_step_end(self, trainer, losses) -> None:
        if trainer.progress.global_step == self.at_step:
            torch.empty(TOO_MUCH, dtype=torch.uint8, device=trainer.prepared.device)


def out_of_memory_isolation(steps: int, device: str = "cuda") -> dict[str, Any]:
    """One job runs out of device memory while another trains: the first fails with its message,
    the second finishes, and the device's allocated memory returns to its level before both."""
    if skip := cuda_skip():
        return {"skipped": skip}
    gc.collect()
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    manager = _manager(max_running=1)
    values = {**train_defaults("cnn"), "arch": "cnn", "device": device, "epochs": 1000}
    survivor = manager.submit(TrainConfig.from_dict({**values, "max_steps": steps * 4}))
    # The failing job waits in the queue (one slot, taken) while it is instrumented.
    failing = manager.submit(TrainConfig.from_dict({**values, "max_steps": steps, "seed": 1}))
    too_much = _AllocateTooMuch(at_step=3)  # added as it is built: a queued job has no trainer
    failing.call_in_training(lambda job: job.trainer.callbacks.append(too_much))
    manager.set_max_running(2)
    failed, survived = _finished(failing), _finished(survivor)
    for job in (failing, survivor):
        manager.remove(job.id)
    del failing, survivor
    gc.collect()
    torch.cuda.synchronize()
    after = torch.cuda.memory_allocated()
    return {
        "ok": failed["state"] == "failed"
        and failed["reason"].startswith("out of memory")
        and survived["state"] == "finished"
        and after <= before,
        "failed_job": {"state": failed["state"], "reason": failed["reason"]},
        "other_job": {"state": survived["state"], "step": survived["step"]},
        "allocated_before": before,
        "allocated_after": after,
    }


def checkpoint_across_devices(steps: int, device: str, folder: Path) -> dict[str, Any]:
    """Train on `device`, save, then evaluate the file as a CPU-only machine would."""
    values = {**train_defaults("cnn"), "arch": "cnn", "device": device, "max_steps": steps}
    job = _manager().submit(TrainConfig.from_dict(values))
    snap = _finished(job)
    path = job.save_checkpoint(folder)
    on_device = evaluate_checkpoint(path)
    loaded_on_cpu = _manager().load_checkpoint(path)
    model = loaded_on_cpu.model_copy().to("cpu")
    saved = {name: value.to("cpu") for name, value in job.model.state_dict().items()}
    same_weights = all(torch.equal(saved[n], v) for n, v in model.state_dict().items())
    return {
        "ok": snap["state"] == "finished" and same_weights,
        "trained_on": device,
        "evaluated": {k: on_device[k] for k in ("val_loss", "val_accuracy")},
        "final_metrics": {k: snap["final_metrics"].get(k) for k in ("val_loss", "val_accuracy")},
        "same_weights_on_cpu": same_weights,
    }


def run_parts(
    calls: dict[str, Callable[[], dict[str, Any]]], budget_s: float
) -> dict[str, dict[str, Any]]:
    """Each part in order while time is left; a part that raises is reported, not fatal."""
    started = time.perf_counter()
    report: dict[str, dict[str, Any]] = {}
    for name, call in calls.items():
        spent = time.perf_counter() - started
        if spent > budget_s:
            report[name] = {"skipped": f"the budget of {budget_s:.0f} s was spent"}
            continue
        part_started = time.perf_counter()
        try:
            report[name] = call()
        except Exception as error:  # noqa: BLE001  (one part's failure must not lose the rest)
            report[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        report[name]["seconds"] = round(time.perf_counter() - part_started, 1)
    return report
