"""`python -m deeparch export`: a run's settings as a standalone PyTorch script or notebook."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deeparch.cli.options import add_run_arguments
from deeparch.cli.train import TRAIN_FLAGS, build_train_config
from deeparch.errors import ConfigError
from deeparch.export.notebook import export_notebook
from deeparch.export.script import export_script

FORMATS = {"script": (export_script, ".py"), "notebook": (export_notebook, ".ipynb")}


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser(
        "export",
        help="a run as a standalone PyTorch script or Jupyter notebook (no deeparch needed)",
        description="Writes the same data split, seed, layers and training loop as "
        "`deeparch train ARCH` with the same settings; to stdout, or to --out.",
    )
    add_run_arguments(
        export, "an architecture or training field (hidden_sizes=256,64, lr=0.01, epochs=5)"
    )
    export.add_argument("--format", choices=tuple(FORMATS), default="script")
    export.add_argument("--out", default=None, help="file to write (default: stdout)")
    export.set_defaults(func=export_command)


def export_command(args: argparse.Namespace) -> int:
    for name in TRAIN_FLAGS:  # export takes these as --set only; build_train_config reads them
        setattr(args, name, None)
    args.resume = None
    config = build_train_config(args)
    write, suffix = FORMATS[args.format]
    text = write(config)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    target = Path(args.out)
    if target.suffix != suffix:
        raise ConfigError(
            "--out", args.out, f"a file name ending in {suffix} for --format {args.format}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(f"wrote {target}", file=sys.stderr)
    return 0
