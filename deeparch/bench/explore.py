"""Timings of the exploration views on this machine: latent decodes, feature maps, sequence speed.

Run: python -m deeparch.bench.explore [--repeats 15] [--sequence-steps 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from deeparch.config import check_count
from deeparch.data.info import EXAMPLE_INFO
from deeparch.explore import latent
from deeparch.explore.images import inspect_image
from deeparch.explore.sequences import CELL_VARIANTS, measure_training_speed
from deeparch.figures import explore as figs
from deeparch.models import create_model

# The budgets the views are built to (README): a slider must feel immediate.
BUDGETS_MS = {
    "vae single decode (slider move)": 30.0,
    "vae 20x20 latent grid": 300.0,
    "feature maps of one image (cnn)": 200.0,
}


def median_ms(function: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    """Median wall time of `function` in milliseconds over `repeats` calls, after warm-up calls."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def view_timings(repeats: int = 15) -> dict[str, float]:
    """Median milliseconds of each view's deeparch computation (and of building its figure)."""

    info = EXAMPLE_INFO["image"]
    torch.manual_seed(0)
    vae, _ = create_model("vae", {"latent_dim": 2}, info)
    vae.eval()
    z = np.array([0.3, -0.7], dtype=np.float32)
    timings = {
        "vae single decode (slider move)": median_ms(lambda: latent.decode(vae, z), repeats),
        "vae 20x20 latent grid": median_ms(lambda: latent.decode_grid(vae, -1.5, 1.5, 20), repeats),
    }
    grid = latent.decode_grid(vae, -1.5, 1.5, 20)  # (20, 20, C, H, W), as the page draws it
    timings["figure of the 20x20 grid"] = median_ms(
        lambda: figs.latent_grid_figure(grid, (-1.5, 1.5), (-1.5, 1.5)).to_json(), repeats
    )
    image = torch.rand(1, 28, 28)
    for arch in ("cnn", "alexnet", "resnet"):
        model, _ = create_model(arch, {}, info)
        model.eval()
        label = f"feature maps of one image ({arch})"
        timings[label] = median_ms(lambda m=model: inspect_image(m, image), repeats)
    cnn, _ = create_model("cnn", {}, info)
    result = inspect_image(cnn, image)
    timings["figures of the cnn's feature maps"] = median_ms(
        lambda: [figs.feature_map_figure(m).to_json() for m in result.feature_maps.values()],
        repeats,
    )
    return timings


def sequence_speeds(dataset: str = "mnist1d", steps: int = 20, batch_size: int = 64) -> dict:
    """Training samples/s per cell type (Bradbury et al. 2016: QRNNs up to 16x faster than LSTM)."""

    return {
        label: round(measure_training_speed(label, dataset, steps, batch_size).samples_per_s)
        for label in CELL_VARIANTS
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deeparch bench-explore", description=__doc__)
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per measurement")
    parser.add_argument("--sequence-steps", type=int, default=20, help="0 skips the speeds")
    parser.add_argument("--dataset", default="mnist1d", choices=("mnist1d", "mnist_rows"))
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    """Measure, print a table (or JSON); exit code 1 when a view misses its budget."""
    check_count("--repeats", args.repeats, 1, 1000)
    check_count("--sequence-steps", args.sequence_steps, 0, 10_000)
    report: dict[str, Any] = {
        "torch_threads": torch.get_num_threads(),
        "median_ms": {k: round(v, 2) for k, v in view_timings(args.repeats).items()},
        "budgets_ms": BUDGETS_MS,
    }
    if args.sequence_steps:
        report["sequence_samples_per_s"] = sequence_speeds(args.dataset, args.sequence_steps)
    over = [k for k, budget in BUDGETS_MS.items() if report["median_ms"][k] > budget]
    report["over_budget"] = over
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"torch threads: {report['torch_threads']}")
        for name, value in report["median_ms"].items():
            budget = BUDGETS_MS.get(name)
            note = f"  (budget {budget:.0f} ms)" if budget else ""
            print(f"{name:<40} {value:>9.2f} ms{note}")
        for name, speed in report.get("sequence_samples_per_s", {}).items():
            print(f"{name + ' training':<40} {speed:>9d} samples/s ({args.dataset})")
        if over:
            print("over budget: " + ", ".join(over))
    return 1 if over else 0


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """The `bench-explore` subcommand, for the CLI to register next to `bench`."""
    parser = subparsers.add_parser("bench-explore", help="time the exploration views")
    add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
