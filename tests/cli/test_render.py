"""The command line's tables and training progress, for a terminal and for a log file."""

import io

from rich.console import Console

from deeparch.cli.render import TrainingProgress, epoch_text, print_table, progress_text, table


def snapshot(step: int, epochs_done: int) -> dict:
    return {
        "step": step,
        "total_steps": 20,
        "epoch": epochs_done,
        "epochs": 2,
        "losses": {"loss": [[step, 0.5]]} if step else {},
        "samples_per_s": 1234.4,
        "eta_s": 3.2,
        "epoch_metrics": [
            {"epoch": e + 1, "step": 10 * (e + 1), "train_loss": 0.6, "val_accuracy": 0.875}
            for e in range(epochs_done)
        ],
    }


def test_a_table_in_a_file_keeps_its_columns_and_no_trailing_blanks(capsys):
    rows = [("mlp", "513,810", "a formula " * 30), ("cnn", "93,322", "short")]
    print_table(table(("name", "parameters", "formula"), rows, right={1}))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "parameters", "formula"]
    assert set(lines[1]) == {"─"}  # the rule under the headers
    assert all(line == line.rstrip() for line in lines)
    # numbers right-aligned under their header; the long cell is not wrapped onto a second line
    ends = {line.index(count) + len(count) for line, count in zip(lines[2:], ("513,810", "93,322"))}
    assert ends == {lines[0].index("parameters") + len("parameters")}
    assert len(lines) == 4


def test_progress_text_and_epoch_text():
    assert progress_text(snapshot(5, 0)) == "step 5/20 epoch 0/2 loss 0.5000 1234 samples/s ETA 3s"
    entry = snapshot(10, 1)["epoch_metrics"][0]
    assert epoch_text(entry, snapshot(12, 1)) == (
        "epoch 1/2 (step 10/20): train_loss 0.6 val_accuracy 0.875"
    )


def test_a_log_gets_a_line_per_epoch_and_one_at_the_end():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=80)
    with TrainingProgress(console=console) as progress:
        for step, epochs_done in [(3, 0), (7, 0), (12, 1), (15, 1), (20, 2)]:
            progress.update(snapshot(step, epochs_done))
        progress.finish(snapshot(20, 2))
    assert out.getvalue().splitlines() == [
        "epoch 1/2 (step 10/20): train_loss 0.6 val_accuracy 0.875",
        "epoch 2/2 (step 20/20): train_loss 0.6 val_accuracy 0.875",
        "step 20/20 epoch 2/2 loss 0.5000 1234 samples/s ETA 3s",
    ]


def test_a_resumed_run_does_not_repeat_the_epochs_of_its_history():
    out = io.StringIO()
    with TrainingProgress(epochs_done=1, console=Console(file=out, force_terminal=False)) as bar:
        bar.finish(snapshot(20, 2))
    assert out.getvalue().splitlines()[0].startswith("epoch 2/2 (step 20/20)")
    assert len(out.getvalue().splitlines()) == 2


def test_a_terminal_gets_one_bar_redrawn_in_place():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with TrainingProgress(console=console) as progress:
        progress.update(snapshot(7, 0))
        progress.update(snapshot(12, 1))
        progress.finish(snapshot(20, 2))
    drawn = out.getvalue()
    assert "step 7/20" in drawn and "step 20/20 epoch 2/2" in drawn
    assert "━" in drawn and "\r" in drawn  # a bar, redrawn on the same line
    assert "(step 10/20)" not in drawn  # no epoch lines on a terminal
    assert drawn.count("\n") <= 2  # the bar's final state stays, on one line
