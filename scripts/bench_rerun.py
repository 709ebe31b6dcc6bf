"""Benchmark (by hand): CPU seconds of one Train page rerun that draws a finished run.

    python scripts/bench_rerun.py                      # this checkout
    python scripts/bench_rerun.py --baseline /tmp/old  # and another one, interleaved

Under AppTest, in a fresh process per checkout and round: train the default mlp (hidden 16, two
epochs) on the page, then rerun the page `--reruns` times and take the median of each rerun's
process CPU time (`time.process_time`: every thread, so what the server's one interpreter spends
on it, and less sensitive than wall time to what else runs on the machine). A rerun draws the
live panel of a finished run: progress, numbers, both charts, the results and the confusion
matrix with a cell's examples, and the form above them. With thirty tabs refreshing, this is
what the server's interpreter is asked for again and again.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

ONE_CHECKOUT = r"""
import json, os, sys, time
sys.path.insert(0, os.getcwd())
from tests.app.test_pages import metric, open_page, run_until
at = open_page("pages/train.py", {"arch": "mlp"})
at.switch_page("pages/train.py").run()
at.text_input(key="train_mlp_hidden_sizes").set_value("16").run()
at.number_input(key="train_cfg_epochs").set_value(2).run()
at.button(key="train_start").click().run()
run_until(at, lambda a: metric(a, "state") in ("finished", "stopped", "failed"), 240)
assert metric(at, "state") == "finished", metric(at, "state")
at.run()
seconds = []
for _ in range(int(sys.argv[1])):
    started = time.process_time()
    at.run()
    seconds.append(time.process_time() - started)
print(json.dumps(seconds))
"""


def rerun_seconds(checkout: Path, reruns: int) -> list[float]:
    done = subprocess.run(
        [sys.executable, "-c", ONE_CHECKOUT, str(reruns)],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "DEEPARCH_RUN_STORE": str(Path("/tmp") / f"bench-rerun-{os.getpid()}")},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout, measured the same way")
    parser.add_argument("--rounds", type=int, default=2, help="fresh processes per checkout")
    parser.add_argument("--reruns", type=int, default=12, help="page reruns timed per process")
    args = parser.parse_args()
    checkouts = {"this": REPO, **({"baseline": args.baseline} if args.baseline else {})}
    medians: dict[str, list[float]] = {name: [] for name in checkouts}
    for _ in range(args.rounds):
        for name, checkout in checkouts.items():  # interleaved: both see the same load
            medians[name].append(statistics.median(rerun_seconds(checkout, args.reruns)))
    report = {
        name: {"rerun_cpu_ms": [round(1000 * m, 1) for m in values]}
        for name, values in medians.items()
    }
    if args.baseline:
        report["ratio"] = round(
            statistics.median(medians["baseline"]) / statistics.median(medians["this"]), 2
        )
    report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
