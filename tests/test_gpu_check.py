"""scripts/gpu_check.py on the CPU: every part runs or says why not, in one JSON report."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deeparch.bench import gpu

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu") / "report.json"
    command = [sys.executable, "scripts/gpu_check.py", "--steps", "3", "--batch-size", "32"]
    # The load test's ramp starts a server of its own: tests/loadtest covers it.
    command += ["--archs", "mlp", "dcgan", "--skip", "loadtest", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = json.loads(done.stdout)
    assert printed == json.loads(out.read_text())
    return printed


def test_the_report_has_every_part_in_order(report):
    assert list(report["parts"]) == [
        "out_of_memory", "checkpoint", "engine_vs_plain", "concurrent", "defaults",
    ]  # fmt: skip
    assert report["environment"]["torch"] == torch.__version__
    assert len(report["environment"]["load_average"]) == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the CUDA parts run")
def test_cuda_parts_say_why_they_were_skipped(report):
    assert report["cuda_skipped"] == "no CUDA device visible to PyTorch here"
    assert report["parts"]["out_of_memory"]["skipped"] == report["cuda_skipped"]
    assert report["parts"]["defaults"]["devices"] == ["cpu"]


def test_defaults_train_and_their_losses_fall_unless_adversarial(report):
    archs = report["parts"]["defaults"]["archs"]
    assert archs["mlp"]["cpu"]["state"] == "finished"
    assert archs["mlp"]["cpu"]["reason"] == "reached max_steps 3"
    assert archs["mlp"]["cpu"]["samples_per_s"] > 0
    assert archs["dcgan"]["cpu"]["loss_need_not_fall"] == gpu.LOSS_NEED_NOT_FALL["gan"]


def test_a_checkpoint_evaluates_to_its_final_metrics(report):
    part = report["parts"]["checkpoint"]
    assert part["ok"] and part["same_weights_on_cpu"]
    assert part["evaluated"]["val_accuracy"] == pytest.approx(part["final_metrics"]["val_accuracy"])
    assert part["evaluated"]["val_loss"] == pytest.approx(part["final_metrics"]["val_loss"])


def test_engine_against_plain_and_concurrent_jobs_report_their_ratios(report):
    plain = report["parts"]["engine_vs_plain"]["archs"]
    assert set(plain) == {"mlp", "cnn"}
    assert set(plain["cnn"]["plain"]) >= {"fp32", "channels_last"}
    assert plain["mlp"]["engine_vs_plain"] == pytest.approx(
        plain["mlp"]["engine"] / plain["mlp"]["plain"]["fp32"], rel=0.01
    )
    concurrent = report["parts"]["concurrent"]
    assert concurrent["ok"] and len(concurrent["each"]) == 4
    assert concurrent["total"] == pytest.approx(sum(concurrent["each"]), abs=0.5)


def test_run_parts_reports_a_failing_part_and_skips_past_the_budget():
    def broken():
        raise ValueError("no such thing")

    report = gpu.run_parts({"broken": broken, "fine": lambda: {"ok": True}}, budget_s=60)
    assert report["broken"]["ok"] is False
    assert report["broken"]["error"] == "ValueError: no such thing"
    assert report["fine"]["ok"] is True
    late = gpu.run_parts({"first": lambda: {"ok": True}, "second": lambda: {}}, budget_s=-1)
    assert late["first"]["skipped"] == late["second"]["skipped"] == "the budget of -1 s was spent"


def test_the_load_test_part_says_when_the_tool_is_missing(monkeypatch, tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    import gpu_check

    monkeypatch.setattr(gpu_check, "LOADTEST", ROOT / "scripts" / "no_such_loadtest.py")
    assert gpu_check.loadtest_ramp(2, timeout_s=5) == {
        "skipped": "scripts/no_such_loadtest.py is not in this checkout"
    }
