"""The train, evaluate and bench commands of `python -m deeparch` (added by deeparch.cli.main)."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from deeparch.bench.engine import run_bench
from deeparch.bench.explore import add_command as add_bench_explore
from deeparch.checkpoint.files import checkpoint_paths, read_checkpoint
from deeparch.checkpoint.optimizer import CheckpointMismatchError
from deeparch.cli.options import add_run_arguments, name_option
from deeparch.cli.render import TrainingProgress, print_table, table
from deeparch.config import check_count, parse_assignments
from deeparch.engine.checkpointing import WeightsFrom
from deeparch.engine.config import TrainConfig, train_defaults, train_field_specs
from deeparch.engine.evaluate import evaluate_checkpoint
from deeparch.engine.manager import JobManager, terminal_manager
from deeparch.errors import ConfigError, DeeparchError
from deeparch.models import get_arch

# Exit codes: 0 finished, 1 failed, 2 bad input (cli.main), 3 diverged, 4 trained but the
# checkpoint could not be written, 130 interrupted (Ctrl-C).
EXIT_CODES = {"finished": 0, "failed": 1, "diverged": 3, "stopped": 130}
EXIT_SAVE_FAILED = 4
PROGRESS_INTERVAL_S = 0.25
MAX_THREADS = 256
# The training flags of `train` that are also TrainConfig fields (and so also --set keys).
TRAIN_FLAGS = {
    "epochs": "--epochs",
    "lr": "--lr",
    "batch_size": "--batch-size",
    "optimizer": "--optimizer",
    "momentum": "--momentum",
    "seed": "--seed",
    "max_steps": "--max-steps",
    "lr_schedule": "--lr-schedule",
    "early_stopping": "--early-stopping",
    "train_subset": "--train-subset",
    "classes": "--classes",
    "augment": "--augment",
    "freeze": "--freeze",
    "reconstruction_loss": "--loss",
}


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register train, evaluate and bench on the main parser's subcommands."""
    train = subparsers.add_parser(
        "train",
        help="train an architecture; progress on stderr, final metrics as one JSON line on stdout",
        description="Exit codes: 0 finished, 1 failed, 2 bad input, 3 diverged, 4 trained but "
        "the checkpoint could not be written, 130 interrupted.",
    )
    add_run_arguments(
        train, "an architecture field (hidden_sizes=500,200) or a training field (l1=1e-4)"
    )
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--lr", default=None, help="learning rate")
    train.add_argument("--batch-size", dest="batch_size", default=None)
    train.add_argument(
        "--optimizer", default=None, help="sgd, adam, adamw, rmsprop, adagrad or adadelta"
    )
    train.add_argument("--momentum", default=None, help="sgd only: 0.9 by default, 0 for plain SGD")
    train.add_argument("--seed", default=None)
    train.add_argument("--max-steps", dest="max_steps", default=None, help="0: all epochs")
    train.add_argument(
        "--lr-schedule",
        dest="lr_schedule",
        default=None,
        help="constant, step (--set lr_step_epochs=..., lr_gamma=...) or cosine",
    )
    train.add_argument(
        "--early-stopping",
        dest="early_stopping",
        default=None,
        metavar="PATIENCE",
        help="stop when val_loss has not improved for this many epochs; keep the best weights",
    )
    train.add_argument(
        "--train-subset",
        dest="train_subset",
        default=None,
        metavar="N",
        help="train on N training samples (stratified, fixed by --seed) to see overfitting",
    )
    train.add_argument(
        "--classes",
        default=None,
        metavar="LABELS",
        help="train on these classes only (0,1,2,3,4), relabelled 0..k-1; the head gets k outputs",
    )
    train.add_argument(
        "--augment",
        action="store_const",
        const="true",
        default=None,
        help="image sets: random shifts, small rotations and flips where they make sense",
    )
    train.add_argument(
        "--freeze",
        default=None,
        metavar="PARTS",
        help="parts not to train, comma-separated (see `summary ARCH` for the part names)",
    )
    train.add_argument(
        "--loss",
        dest="reconstruction_loss",
        default=None,
        help="autoencoders, U-Nets and VAEs: default, mse, bce or l1",
    )
    train.add_argument(
        "--threads",
        default=None,
        help="CPU threads for training (default: PyTorch's, one per core); the app uses one "
        "core fewer, to leave one to the browser",
    )
    train.add_argument("--out", default="checkpoints", help="folder for the checkpoint")
    train.add_argument("--resume", default=None, metavar="CHECKPOINT", help="continue a run")
    train.add_argument(
        "--weights-from",
        dest="weights_from",
        default=None,
        metavar="CHECKPOINT:PARTS",
        help="start a new run from a checkpoint's parts (runs/cnn.safetensors:features): "
        "transfer learning; the other parts start fresh, a new head",
    )
    train.set_defaults(func=train_command)

    evaluate = subparsers.add_parser(
        "evaluate", help="validation metrics of a checkpoint as one JSON line"
    )
    evaluate.add_argument("checkpoint", metavar="CHECKPOINT")
    evaluate.add_argument("--dataset", default=None, help="default: the checkpoint's dataset")
    evaluate.set_defaults(func=evaluate_command)

    bench = subparsers.add_parser(
        "bench", help="samples/s of the engine against a plain loop and a DataLoader loop"
    )
    bench.add_argument("--steps", type=int, default=300, help="training steps per measurement")
    bench.add_argument("--archs", default="mlp,cnn", help="comma-separated architectures")
    bench.add_argument("--batch-size", dest="batch_size", type=int, default=64)
    bench.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    bench.add_argument("--repeats", type=int, default=3, help="rounds; the best of each is kept")
    bench.set_defaults(func=bench_command)

    add_bench_explore(subparsers)


def _json_ready(value: Any) -> Any:
    """Non-finite floats become null, so the line stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def build_train_config(args: argparse.Namespace) -> Any:
    """TrainConfig from the command line (and from the checkpoint when resuming)."""

    spec = get_arch(args.arch)
    arch_fields = {f.name for f in spec.fields()}
    train_fields = {s.name for s in train_field_specs()}
    arch_overrides: dict[str, str] = {}
    train_overrides: dict[str, Any] = {}
    for key, value in parse_assignments(args.set).items():
        if key in arch_fields:
            arch_overrides[key] = value
        elif key in train_fields:
            train_overrides[key] = value
        else:
            raise ConfigError(
                "--set",
                f"{key}={value}",
                f"a field of {args.arch} ({', '.join(sorted(arch_fields)) or 'none'}) "
                f"or of training ({', '.join(sorted(train_fields))})",
            )
    for name, flag in TRAIN_FLAGS.items():
        if getattr(args, name) is not None and name in train_overrides:
            raise ConfigError(
                flag,
                getattr(args, name),
                f"either {flag} or --set {name}=..., not both",
                f"--set {name}={train_overrides[name]} was given too",
            )
    dataset = name_option("--dataset", args.dataset)
    if args.resume:
        _, meta = read_checkpoint(args.resume)
        values = dict(meta["train_config"])
        if values.get("arch") != args.arch:
            raise ConfigError("ARCH", args.arch, f"{values.get('arch')!r}, the checkpoint's")
        values["arch_config"] = {**(values.get("arch_config") or {}), **arch_overrides}
        if dataset is not None:
            values["dataset"] = dataset
    else:
        # The architecture's own training defaults (more epochs for slow learners), then the flags.
        values = {
            **train_defaults(args.arch),
            "arch": args.arch,
            "dataset": dataset,
            "arch_config": arch_overrides,
        }
    values.update(train_overrides)
    for name in TRAIN_FLAGS:
        given = getattr(args, name)
        if given is not None:
            values[name] = given
    return TrainConfig.from_dict(values)


def train_command(args: argparse.Namespace) -> int:
    import torch

    config = build_train_config(args)
    threads = parse_threads(args.threads)
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)  # the job's thread takes this count when it starts
    try:
        return _train(args, config)
    finally:
        torch.set_num_threads(previous_threads)  # this process may be a test, or go on


def parse_threads(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        threads = int(text)
    except ValueError:
        threads = 0
    if threads < 1 or threads > MAX_THREADS:
        raise ConfigError("--threads", text, f"a whole number from 1 to {MAX_THREADS}")
    return threads


def _train(args: argparse.Namespace, config: Any) -> int:
    # A manager of its own: one job, never expired, on the class settings' backend.
    manager = terminal_manager()
    try:
        return _train_on(manager, args, config)
    finally:
        manager.shutdown()  # the job has ended; a local Ray this started stops with it


def _train_on(manager: JobManager, args: argparse.Namespace, config: Any) -> int:
    try:
        source = weights_source(args.weights_from)
        with naming_the_checkpoint(args.resume or (source and str(source.path))):
            job = manager.submit(config, resume=args.resume, weights_from=source)
    except KeyboardInterrupt:
        print("deeparch: interrupted (Ctrl-C) before training started", file=sys.stderr)
        return EXIT_CODES["stopped"]
    # Epochs a resumed run brings in its history were reported by the run that trained them.
    with TrainingProgress(epochs_done=len(job.snapshot()["epoch_metrics"])) as progress:
        try:
            while not job.wait(PROGRESS_INTERVAL_S):
                progress.update(job.snapshot())
        except KeyboardInterrupt:
            job.stop("interrupted (Ctrl-C)")
            job.wait()
        snap = job.snapshot()
        progress.finish(snap)
    checkpoint_path, save_error = None, None
    if job.state in ("finished", "stopped"):
        try:
            checkpoint_path = str(job.save_checkpoint(args.out))
        except (DeeparchError, OSError) as error:
            # The run's numbers are still worth printing; the exit code says it was not saved.
            save_error = " ".join(str(error).split())
            print(f"deeparch: error: the checkpoint was not saved: {save_error}", file=sys.stderr)
    if job.state != "finished":
        print(f"deeparch: {job.state}: {job.reason}", file=sys.stderr)
    result = {
        "arch": job.arch,
        "dataset": job.dataset,
        "state": job.state,
        "reason": job.reason,
        "step": snap["step"],
        **{k: v for k, v in snap["final_metrics"].items() if k != "step"},
        "samples_per_s": snap["samples_per_s"],
        "elapsed_s": snap["elapsed_s"],
        "checkpoint": checkpoint_path,
    }
    if save_error is not None:
        result["checkpoint_error"] = save_error
    sys.stderr.flush()
    print(json.dumps(_json_ready(result)), flush=True)
    return EXIT_CODES.get(job.state, 1) if save_error is None else EXIT_SAVE_FAILED


def weights_source(text: str | None) -> WeightsFrom | None:
    """--weights-from CHECKPOINT:PARTS as a WeightsFrom (None when not given)."""
    if text is None:
        return None
    path, _, parts = text.rpartition(":")
    if not path or not parts.strip():
        raise ConfigError(
            "--weights-from", text, "CHECKPOINT:PARTS, such as runs/cnn.safetensors:features"
        )
    return WeightsFrom(path, parts)


@contextlib.contextmanager
def naming_the_checkpoint(path: str | None) -> Iterator[None]:
    """Put the checkpoint's path in front of a mismatch found after it was read (such errors
    say "the checkpoint's ..." without knowing which file it was)."""
    try:
        yield
    except CheckpointMismatchError as error:
        if path is None:
            raise
        weights = checkpoint_paths(path)[0]
        raise CheckpointMismatchError(f"{weights} does not fit: {error}") from error


def evaluate_command(args: argparse.Namespace) -> int:
    dataset = name_option("--dataset", args.dataset)
    with naming_the_checkpoint(args.checkpoint):
        metrics = evaluate_checkpoint(args.checkpoint, dataset=dataset)
    print(json.dumps(_json_ready(metrics)), flush=True)
    return 0


def check_bench_args(archs: list[str], args: argparse.Namespace) -> None:
    """The bench trains image classifiers with cross-entropy on bundled MNIST, three ways."""

    if not archs:
        raise ConfigError("--archs", args.archs, "comma-separated architecture names")
    for arch in archs:
        spec = get_arch(arch)  # an unknown name lists the known ones
        if spec.task != "classify" or "image" not in spec.data_kinds:
            raise ConfigError("--archs", arch, "image classifiers (mlp, cnn, resnet, ...)")
    check_count("--steps", args.steps, 1, 100_000)
    check_count("--batch-size", args.batch_size, 1, 4000)  # bundled MNIST has 4,000 images
    check_count("--threads", args.threads, 1, MAX_THREADS)
    check_count("--repeats", args.repeats, 1, 100)


# The bench's columns: a result's key, its header, its format.
BENCH_COLUMNS = (
    ("engine", "engine", ".0f"),
    ("engine_in_steps", "(in steps)", ".0f"),
    ("plain", "plain loop", ".0f"),
    ("dataloader", "DataLoader loop", ".0f"),
    ("engine_vs_plain", "engine / plain", ".2f"),
    ("engine_vs_dataloader", "engine / DataLoader", ".2f"),
    ("augmented", "engine augmenting", ".0f"),
    ("augmented_vs_engine", "augmenting / engine", ".2f"),
)


def bench_command(args: argparse.Namespace) -> int:

    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    check_bench_args(archs, args)
    started = time.perf_counter()
    results = run_bench(archs, args.steps, args.batch_size, args.threads, args.repeats)
    rows = [
        (
            arch,
            *(
                format(result[key], spec) if key in result else "-"
                for key, _, spec in BENCH_COLUMNS
            ),
        )
        for arch, result in results.items()
    ]
    rounds = "1 round" if args.repeats == 1 else f"best of {args.repeats} rounds"
    print(f"samples/s, batch {args.batch_size}, {rounds}")
    headers = ("arch", *(header for _, header, _ in BENCH_COLUMNS))
    print_table(table(headers, rows, right=set(range(1, len(headers)))))
    # Figures on a shared machine mean little without the load they were measured under.
    print("load average: " + " ".join(f"{load:.2f}" for load in os.getloadavg()))
    print(f"(bench took {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    print(json.dumps(_json_ready(results)), flush=True)
    return 0
