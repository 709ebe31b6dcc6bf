"""One prepared run of every CUDA path, printing one JSON report (README: "On a GPU").

    python scripts/gpu_check.py                 # on the GPU machine: at most --budget-s seconds
    python scripts/gpu_check.py --steps 5       # here, on the CPU: CUDA parts say why skipped

Parts, in order (a part that would start after the budget is spent is skipped, with the reason):
out-of-memory isolation, a checkpoint from the device evaluated on the CPU, the engine against a
plain loop (with channels-last and bf16 autocast variants), four jobs at once on one device,
every architecture's defaults on the device and the CPU, and the classroom load test's ramp.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from deeparch.bench import gpu  # noqa: E402

LOADTEST = ROOT / "scripts" / "loadtest.py"


def loadtest_ramp(students: int, timeout_s: float) -> dict:
    """The classroom load test's ramp against a server it starts itself, when the tool exists."""
    if not LOADTEST.exists():
        return {"skipped": f"{LOADTEST.relative_to(ROOT)} is not in this checkout"}
    command = [sys.executable, str(LOADTEST), "--scenario", "ramp", "--students", str(students)]
    command += ["--start-server"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)
    if done.returncode != 0:
        return {"ok": False, "error": done.stderr.strip().splitlines()[-1:] or done.returncode}
    return {"ok": True, "report": json.loads(done.stdout)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps per measured run")
    parser.add_argument("--batch-size", type=int, default=256, help="for engine against plain")
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting parts after")
    parser.add_argument("--students", type=int, default=30, help="the load test's ramp")
    parser.add_argument("--archs", nargs="*", default=None, help="defaults part: these only")
    parser.add_argument("--skip", nargs="*", default=[], help="parts to leave out")
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    devices = ["cuda", "cpu"] if device == "cuda" else ["cpu"]
    folder = Path(tempfile.mkdtemp(prefix="deeparch-gpu-check-"))
    calls = {
        "out_of_memory": lambda: gpu.out_of_memory_isolation(args.steps),
        "checkpoint": lambda: gpu.checkpoint_across_devices(args.steps, device, folder),
        "engine_vs_plain": lambda: gpu.engine_against_plain(args.steps, args.batch_size, device),
        "concurrent": lambda: gpu.concurrent_jobs(args.steps, device),
        "defaults": lambda: gpu.defaults_on_devices(args.steps, devices, args.archs),
        "loadtest": lambda: loadtest_ramp(args.students, timeout_s=args.budget_s),
    }
    calls = {name: call for name, call in calls.items() if name not in args.skip}
    report = {"environment": gpu.environment(), "cuda_skipped": gpu.cuda_skip() or None}
    report["parts"] = gpu.run_parts(calls, args.budget_s)
    report["environment"]["load_average_after"] = gpu.environment()["load_average"]
    text = json.dumps(report, indent=2, default=str)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    failed = [name for name, part in report["parts"].items() if part.get("ok") is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
