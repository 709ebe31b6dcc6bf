"""engine.mirror: a snapshot copied by increments equals the snapshot copied whole."""

import pickle

import numpy as np
import pytest

from deeparch.engine.metrics_log import MAX_SNAPSHOTS, MetricsLog
from deeparch.engine.mirror import SnapshotMirror, changes_since


def published(log: MetricsLog) -> dict:
    """What a job's snapshot() holds: the log's copy plus a few plain fields."""
    return {**log.copy(), "id": "job-1", "state": "running"}


def sync(mirror: SnapshotMirror, log: MetricsLog) -> dict:
    """One read across a process boundary: the changes are pickled as Ray pickles them."""
    changes = pickle.loads(pickle.dumps(changes_since(published(log), mirror.cursor())))
    mirror.apply(changes)
    return changes


def equal(left: dict, right: dict) -> bool:
    """Snapshots compared field by field, arrays by value."""
    if set(left) != set(right):
        return False
    for key in left:
        if key == "snapshots":
            if [p["step"] for p in left[key]] != [p["step"] for p in right[key]]:
                return False
            for a, b in zip(left[key], right[key]):
                if not np.array_equal(a["confusion"], b["confusion"]):
                    return False
        elif left[key] != right[key]:
            return False
    return True


def train(log: MetricsLog, first: int, last: int, snapshot_every: int = 10) -> None:
    for step in range(first, last + 1):
        log.add_losses(step, {"loss": 1.0 / step, "kl": float(step)})
        log.update(step=step)
        if step % snapshot_every == 0:
            log.add_snapshot({"step": step, "confusion": np.full((2, 2), step)})
        if step % 100 == 0:
            log.add_epoch({"epoch": step // 100, "train_loss": 1.0 / step})


def test_increments_rebuild_the_whole_snapshot_and_send_only_what_is_new():
    log, mirror = MetricsLog(), SnapshotMirror()
    train(log, 1, 250)
    first = sync(mirror, log)
    assert equal(mirror.copy(), published(log))
    assert len(first["losses"]["loss"][1]) == 250 and len(first["new_snapshots"]) == 25
    train(log, 251, 260)
    second = sync(mirror, log)
    assert second["losses"]["loss"] == (250, [[s, 1.0 / s] for s in range(251, 261)])
    assert [p["step"] for p in second["new_snapshots"]] == [260]
    assert second["epoch_metrics"] == (2, [])
    assert equal(mirror.copy(), published(log))
    third = sync(mirror, log)  # nothing new: nothing but the plain fields
    assert third["losses"]["loss"] == (260, []) and third["new_snapshots"] == []


def test_thinned_snapshots_are_dropped_and_kept_ones_are_not_sent_again():
    log, mirror = MetricsLog(), SnapshotMirror()
    train(log, 1, 10 * MAX_SNAPSHOTS)
    sync(mirror, log)
    kept = mirror.copy()["snapshots"]
    train(log, 10 * MAX_SNAPSHOTS + 1, 10 * MAX_SNAPSHOTS + 10)  # one more: the log thins
    changes = sync(mirror, log)
    assert [p["step"] for p in changes["new_snapshots"]] == [10 * MAX_SNAPSHOTS + 10]
    copied = mirror.copy()["snapshots"]
    assert [p["step"] for p in copied] == [p["step"] for p in log.copy()["snapshots"]]
    assert len(copied) <= MAX_SNAPSHOTS
    assert copied[0] is kept[0]  # the same object: kept, not sent again


def test_a_replaced_log_is_sent_again_whole():
    log, mirror = MetricsLog(), SnapshotMirror()
    train(log, 1, 50)
    sync(mirror, log)
    log.restore({"losses": {"loss": [[1, 2.0], [2, 1.5]]}, "epoch_metrics": []})
    sync(mirror, log)
    assert mirror.copy()["losses"] == {"loss": [[1, 2.0], [2, 1.5]]}


def test_copies_are_the_readers_and_arrays_are_read_only():
    log, mirror = MetricsLog(), SnapshotMirror()
    train(log, 1, 20)
    sync(mirror, log)
    first = mirror.copy()
    first["losses"]["loss"].clear()
    first["epoch_metrics"].append({"epoch": 9})
    second = mirror.copy()
    assert len(second["losses"]["loss"]) == 20 and second["epoch_metrics"] == []
    with pytest.raises(ValueError):  # unpickled arrays are writable until the mirror freezes them
        second["snapshots"][0]["confusion"][0, 0] = 5
    assert mirror.latest_snapshot()["step"] == 20
