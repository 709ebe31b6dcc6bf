"""`python scripts/loadtest.py`: N simulated browser tabs against a deeparch server; a JSON report.

    python scripts/loadtest.py --students 30 --url http://127.0.0.1:8501 --scenario ramp
    python scripts/loadtest.py --start-server --scenario cold --students 30 --repeat 10
    python scripts/loadtest.py --start-server --scenario soak --students 10 --minutes 10
    python scripts/loadtest.py --start-server --scenario churn --cycles 100 --backend ray
    python scripts/loadtest.py --plan full          # every scenario, the issue's sizes (~35 min)
    python scripts/loadtest.py --plan smoke         # the same sequence tiny, to check it (~12 min)

The report (stdout) holds the figures, the load average before and after, the server's memory,
threads and CPU over time, and what each student saw; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path

from .plan import PLANS, cancel_on_signals, describe, planned, run_plan
from .report import run
from .runners import SCENARIOS
from .scenarios import Options

REPO = Path(__file__).resolve().parents[2]


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _stages(text: str) -> tuple[int, ...]:
    try:
        stages = tuple(int(n) for n in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected counts like 1,5,10, got {text!r}") from None
    if not stages or min(stages) < 1:
        raise argparse.ArgumentTypeError(f"stages must be positive counts, got {text!r}")
    return stages


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python scripts/loadtest.py", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--scenario", choices=SCENARIOS, default="ramp")
    p.add_argument("--plan", choices=tuple(PLANS),
                   help="every scenario in a row, fresh servers; reports in --out")  # fmt: skip
    p.add_argument("--out", type=Path, default=None,
                   help="--plan: its folder (default /tmp/deeparch-loadtest/...)")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="--plan: print it and its estimate only")
    p.add_argument("--students", type=int, default=30, help="tabs (ramp: the largest stage)")
    p.add_argument("--url", default="http://127.0.0.1:8501", help="a running server")
    p.add_argument("--start-server", action="store_true", help="start the app (fresh) itself")
    p.add_argument("--app-dir", type=Path, default=REPO, help="the checkout whose app.py to run")
    p.add_argument("--port", type=int, default=0, help="port for --start-server (0: a free one)")
    p.add_argument("--backend", choices=("threads", "ray"), default="", help="DEEPARCH_BACKEND")
    p.add_argument("--server-env", type=_key_value, action="append", default=[],
                   metavar="KEY=VALUE", help="environment of the started server")  # fmt: skip
    p.add_argument("--pid", type=int, help="the server's process (default: who listens on --url)")
    p.add_argument("--repeat", type=int, default=10, help="cold: fresh servers in a row")
    p.add_argument("--stages", type=_stages, default=None, help="ramp: e.g. 1,5,10,20,30")
    p.add_argument("--minutes", type=float, default=10.0, help="soak: how long")
    p.add_argument("--cycles", type=int, default=100, help="churn: start/stop cycles")
    p.add_argument("--epochs", type=int, help="the epochs each student sets")
    p.add_argument("--max-steps", type=int, help="the max_steps each student sets")
    p.add_argument("--set", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="another Train widget to set, by its key (train_cfg_lr=0.01)")  # fmt: skip
    p.add_argument("--abandon-wait", type=float, default=150.0,
                   help="abandon: seconds to wait for the server to fall idle")  # fmt: skip
    p.add_argument("--open-pages", type=lambda text: tuple(text.split(",")), default=None,
                   help="cold: the URL paths the tabs open in turn (default: home and six pages; "
                   "an empty entry is /)")  # fmt: skip
    p.add_argument("--arrivals", type=int, default=10,
                   help="arrival: students arriving in turn while the rest train")  # fmt: skip
    p.add_argument("--window", type=float, default=15.0,
                   help="arrival: seconds the job alone is measured for")  # fmt: skip
    p.add_argument("--log-dir", type=Path, default=Path("/tmp/deeparch-loadtest"))
    p.add_argument("--timeout", type=float, default=900.0, help="per step of a student")
    return p


def options_from(args: argparse.Namespace) -> Options:
    if args.students < 1:
        raise SystemExit(f"--students must be at least 1, got {args.students}")
    settings = {key: _number(value) for key, value in args.set}
    if args.epochs is not None:
        settings["train_cfg_epochs"] = args.epochs
    if args.max_steps is not None:
        settings["train_cfg_max_steps"] = args.max_steps
    options = Options(
        scenario=args.scenario,
        students=args.students,
        url=args.url.rstrip("/"),
        start_server=args.start_server,
        app_dir=args.app_dir.resolve(),
        port=args.port,
        backend=args.backend,
        server_env=dict(args.server_env),
        pid=args.pid,
        repeat=args.repeat,
        minutes=args.minutes,
        cycles=args.cycles,
        settings=settings,
        abandon_wait_s=args.abandon_wait,
        arrivals=args.arrivals,
        window_s=args.window,
        open_pages=args.open_pages,
        log_dir=args.log_dir,
        timeout_s=args.timeout,
    )
    if args.stages:
        options.stages = args.stages
    if not (options.app_dir / "app.py").exists() and options.start_server:
        raise SystemExit(f"--app-dir {options.app_dir} has no app.py")
    if options.backend and not options.start_server:
        raise SystemExit("--backend sets the started server's DEEPARCH_BACKEND: add --start-server")
    return options


def main_plan(args: argparse.Namespace) -> int:
    args.start_server = True  # a plan starts a fresh server for every scenario
    base = options_from(args)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out = (args.out or Path("/tmp/deeparch-loadtest") / f"{args.plan}-{stamp}").resolve()
    if args.dry_run:
        print(describe(args.plan, planned(args.plan, base, out)))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        summary = asyncio.run(run_plan(args.plan, base, out))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"plan stopped; what it finished is in {out}", file=sys.stderr)
        return 130
    print(summary.read_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.plan:
        return main_plan(args)
    options = options_from(args)

    async def run_until_signalled() -> dict:
        cancel_on_signals()
        return await run(options)

    try:
        report = asyncio.run(run_until_signalled())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("stopped before the scenario ended; its server is stopped", file=sys.stderr)
        return 130
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0
