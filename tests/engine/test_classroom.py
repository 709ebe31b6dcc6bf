"""One server for a class: ownership, fair scheduling, thread budgets, the run store, abandoned
jobs and shutdown, on the thread backend."""

import dataclasses
import gc
import json
import math
import platform
import threading
import time
import weakref

import pandas
import pyarrow
import pytest
import torch

from deeparch.checkpoint import files as checkpoint
from deeparch.engine import classroom
from deeparch.engine import manager as manager_module
from deeparch.engine import store as store_module
from deeparch.engine import threads as threads_module
from deeparch.engine.config import TrainConfig
from deeparch.engine.ended import EndedRun
from deeparch.engine.manager import TEACHER, JobManager, NotYourJobError
from deeparch.engine.store import RunStore, session_folder_name
from deeparch.engine.threads import ThreadBudget, TimeSlices, give_freed_memory_back
from deeparch.errors import ConfigError, UnknownNameError
from tests.engine.jobs import SMALL, patch_train_step, tensors_reachable

TINY = TrainConfig(
    arch="mlp", arch_config={"hidden_sizes": (8,)}, batch_size=32, epochs=1, max_steps=3
)
LONG = TrainConfig(arch="mlp", arch_config={"hidden_sizes": (8,)}, batch_size=32, epochs=200)
ALICE, BOB, CAROL = "a" * 32, "b" * 32, "c" * 32


def held_manager(**kwargs) -> JobManager:
    """A manager with no free slot yet, so tests can queue jobs and look at the order."""
    kwargs.setdefault("heartbeat_timeout", 0)
    manager = JobManager(max_running=0, **kwargs)
    return manager


# ---- ownership -----------------------------------------------------------------------------------


def test_only_the_owner_or_the_teacher_controls_a_job():
    manager = held_manager()
    job = manager.submit(TINY, owner=ALICE)
    for action in (manager.stop, manager.pause, manager.resume, manager.step, manager.remove):
        with pytest.raises(NotYourJobError, match="belongs to another session"):
            action(job.id, BOB)
    assert job.state == "queued"  # nothing a stranger did reached it
    assert manager.stop(job.id, TEACHER)
    assert job.state == "stopped" and "teacher" in job.reason


def test_the_owner_stops_their_own_job():
    manager = held_manager()
    job = manager.submit(TINY, owner=ALICE)
    assert manager.stop(job.id, ALICE) and job.state == "stopped"


def test_the_teachers_job_table_has_one_type_per_column():
    """Streamlit sends a table as Arrow, one type a column: a running job's empty queue position
    beside a queued job's number failed that, and logged a traceback at every refresh."""
    manager = held_manager()
    running = manager.submit(LONG, owner=ALICE)
    waiting = manager.submit(LONG, owner=BOB)
    manager.set_max_running(1)
    assert (running.state, waiting.state) == ("running", "queued")
    rows = classroom.job_rows(manager)
    assert [(row["id"], row["queue position"]) for row in rows] == [
        (running.id, ""),
        (waiting.id, "1"),
    ]
    pyarrow.Table.from_pandas(pandas.DataFrame(rows))  # raises ArrowTypeError on a mixed column
    for job in (running, waiting):
        job.stop()
        assert job.wait(30)


# ---- fair scheduling -----------------------------------------------------------------------------


def test_the_servers_usage_counts_its_jobs_and_turns_or_its_ray_workers():
    manager = JobManager(max_running=2, heartbeat_timeout=0, cores=1, slice_s=0.5)
    jobs = [manager.submit(LONG, owner=owner) for owner in (ALICE, BOB, CAROL)]
    try:
        usage = classroom.server_usage(manager)
        assert usage["jobs in memory"] == 3 and usage["jobs training (holding a slot)"] == 2
        assert usage["jobs computing now (holding a turn)"] <= 1  # one core: one turn
        assert usage["torch threads of computing jobs"] <= 1 and usage["cores for training"] == 1
    finally:
        for job in jobs:
            job.stop("enough")
            job.wait(60)

    class RayLikePool:  # what the Ray backend's WorkerPool tells (ray_backend.WorkerPool)
        jobs_per_worker, cpus_per_job = 16, 1.0

        def size(self):
            return 1, 2  # (idle, busy)

    manager.backend = type("RayLike", (), {"pool": RayLikePool()})()
    usage = classroom.server_usage(manager)
    assert usage["Ray workers training / idle"] == "2 / 1"
    assert usage["jobs a Ray worker trains, in turns"] == 16
    assert usage["CPU cores a Ray worker reserves"] == 1.0
    assert "jobs computing now (holding a turn)" not in usage  # the server holds no turns then


def test_a_student_has_at_most_one_job_training_and_the_rest_wait_behind_their_own():
    manager = held_manager(jobs_per_student=1, queue_per_student=2)
    jobs = [manager.submit(SMALL, owner=ALICE) for _ in range(3)]
    with pytest.raises(ConfigError, match="at most 3 queued or training per student"):
        manager.submit(SMALL, owner=ALICE)
    manager.set_max_running(3)  # room for three, but they are all Alice's
    assert [job.state for job in jobs] == ["running", "queued", "queued"]
    assert manager.running_count(ALICE) == 1
    other = manager.submit(SMALL, owner=BOB)  # Bob is not behind Alice's queue
    assert other.state == "running"
    for job in [*jobs, other]:
        job.stop()
        job.wait(30)


def test_free_slots_go_round_robin_to_the_student_served_longest_ago():
    manager = held_manager(jobs_per_student=3, queue_per_student=3)
    a1, a2, a3 = (manager.submit(TINY, owner=ALICE) for _ in range(3))
    b1, b2 = (manager.submit(TINY, owner=BOB) for _ in range(2))
    c1 = manager.submit(TINY, owner=CAROL)
    expected = [a1, b1, c1, a2, b2, a3]
    assert [manager.queue_position(job) for job in expected] == [1, 2, 3, 4, 5, 6]
    started = []
    for job in expected:
        original = job.start
        job.start = lambda original=original, job=job: started.append(job) or original()
    manager.set_max_running(1)  # one at a time: each ends before the next starts
    for job in expected:
        assert job.wait(60)
    assert started == expected


def test_a_students_queued_jobs_are_dropped_when_their_session_ends():
    manager = held_manager(jobs_per_student=1, queue_per_student=2)
    alice = [manager.submit(TINY, owner=ALICE) for _ in range(2)]
    bob = manager.submit(TINY, owner=BOB)
    dropped = manager.end_session(ALICE)
    assert dropped == alice
    assert all(job.state == "stopped" and "session ended" in job.reason for job in alice)
    assert manager.jobs(owner=ALICE) == []
    assert manager.queue_position(bob) == 1


def test_a_reload_keeps_the_owners_queued_jobs_and_a_closed_tab_drops_them_after_the_grace():
    manager = held_manager(jobs_per_student=1, queue_per_student=2)
    manager.reconnect_grace_s = 0.2
    manager.open_session(ALICE)
    queued = [manager.submit(TINY, owner=ALICE) for _ in range(2)]
    # A reload: the old session ends, and the new one (the same owner, from the cookie) opens
    # within the grace; a second tab of the same browser ending leaves the first one's jobs.
    assert manager.end_session(ALICE) == []
    manager.open_session(ALICE)
    manager.open_session(ALICE)
    assert manager.end_session(ALICE) == []
    time.sleep(0.6)  # past the grace: the pending release finds the owner back, and keeps all
    assert manager.jobs(owner=ALICE) == queued
    assert [job.state for job in queued] == ["queued", "queued"]
    assert manager.end_session(ALICE) == []  # the last tab closes: dropped once the grace ends
    deadline = time.monotonic() + 60
    while manager.jobs(owner=ALICE) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert manager.jobs(owner=ALICE) == []
    assert all(job.state == "stopped" and "session ended" in job.reason for job in queued)


def test_an_owner_whose_tab_closed_comes_back_to_its_runs_in_memory():
    manager = held_manager()
    manager.open_session(ALICE)
    assert manager.end_session(ALICE) == []  # no grace: released at once
    assert manager.release_owner(ALICE) == []
    manager.open_session(ALICE)  # the same browser opens the app again
    assert ALICE not in manager._ended_sessions  # its ended runs may stay in memory again


# ---- cores ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cores", "jobs", "shares"), [(1, 1, [1]), (4, 1, [4]), (4, 3, [2, 1, 1]), (2, 2, [1, 1])]
)
def test_the_thread_budget_divides_the_cores_among_the_computing_jobs(cores, jobs, shares):
    budget = ThreadBudget(cores)
    for index in range(jobs):
        budget.join(f"job-{index}")
    assert list(budget.shares().values()) == shares
    assert budget.total() == cores


def test_admitted_jobs_take_turns_and_never_use_more_threads_than_cores():
    cores = 2
    manager = JobManager(max_running=4, heartbeat_timeout=0, cores=cores, slice_s=0.01)
    manager.set_max_running(0)
    jobs = [manager.submit(SMALL) for _ in range(4)]
    seen, order = [], []

    def record(inner, original):
        def train_step(batch):
            computing = manager.slices.computing()
            seen.append((len(computing), manager.budget.total(), torch.get_num_threads()))
            order.append(inner.id)
            return original(batch)

        return train_step

    for job in jobs:
        patch_train_step(job, record)
    manager.set_max_running(4)
    for job in jobs:
        assert job.wait(120) and job.state == "finished"
    assert seen
    assert all(computing <= cores and total <= cores for computing, total, _ in seen)
    assert all(1 <= threads <= cores for _, _, threads in seen)
    # Turns changed hands: the jobs' steps interleave (run one after another, 4 jobs would
    # give 3 changes).
    changes = sum(1 for before, after in zip(order, order[1:], strict=False) if before != after)
    assert changes > len(jobs) - 1


def test_time_slices_serve_the_waiting_in_order():
    slices = TimeSlices(turns=1, slice_s=0.0)
    assert slices.acquire("a", lambda: False)
    assert not slices.acquire("b", lambda: True)  # gives up at once: asked to stop
    slices.release("a")
    assert slices.acquire("b", lambda: False) and slices.computing() == ["b"]


def test_a_first_turn_is_short_and_later_turns_last_the_slice():
    slices = TimeSlices(turns=1, slice_s=5.0)

    def wait_behind(job_id: str) -> threading.Thread:
        waiter = threading.Thread(target=slices.acquire, args=(job_id, lambda: False, 0.01))
        waiter.start()  # someone waits: a used-up turn is then given up
        while slices.waiting() == 0:
            time.sleep(0.005)
        return waiter

    assert slices.acquire("new", lambda: False, first=True)
    waiter = wait_behind("back")
    time.sleep(TimeSlices.FIRST_SLICE_S + 0.01)
    assert slices.expired("new")  # its first loss point is drawn by now: the next one's turn
    slices.release("new")
    waiter.join(30)
    assert slices.computing() == ["back"]  # a later turn: 5 s
    waiter = wait_behind("third")
    time.sleep(TimeSlices.FIRST_SLICE_S + 0.01)
    assert not slices.expired("back")
    slices.release("back")
    waiter.join(30)
    assert slices.computing() == ["third"]


def test_a_first_turn_goes_ahead_of_later_turns_behind_other_first_turns():
    slices = TimeSlices(turns=1, slice_s=0.5)
    assert slices.acquire("training", lambda: False)
    served, threads = [], []

    def take_a_turn(job_id: str, first: bool) -> None:
        assert slices.acquire(job_id, lambda: False, poll_s=0.01, first=first)
        served.append(job_id)
        slices.release(job_id)

    # two jobs back for another turn, then two new ones, then one more back: queued in turn
    for job_id, first in (("back 1", False), ("back 2", False), ("new 1", True),
                          ("new 2", True), ("back 3", False)):  # fmt: skip
        threads.append(threading.Thread(target=take_a_turn, args=(job_id, first)))
        threads[-1].start()
        deadline = time.monotonic() + 30
        while slices.waiting() < len(threads):
            assert time.monotonic() < deadline, f"{job_id} never queued"
            time.sleep(0.005)
    slices.release("training")
    for thread in threads:
        thread.join(30)
    assert served == ["new 1", "new 2", "back 1", "back 2", "back 3"]


# ---- memory and the run store --------------------------------------------------------------------


def test_ended_runs_leave_memory_for_the_store_and_come_back_equal(tmp_path):
    store = RunStore(tmp_path)
    manager = JobManager(
        max_running=1, heartbeat_timeout=0, store=store, runs_in_memory=2, queue_per_student=9
    )
    weights = {}
    for _ in range(5):
        job = manager.submit(TINY, owner=ALICE)
        assert job.wait(60) and job.state == "finished"
        weights[job.id] = job.model_copy().state_dict()
    assert manager.jobs_held() == 2  # the newest two; the others only on disk
    stored = manager.stored_runs(ALICE)
    assert sorted(run.id for run in stored) == sorted(weights)
    assert (tmp_path / session_folder_name(ALICE)).is_dir()
    assert ALICE not in str(list(tmp_path.rglob("*")))  # folder names never carry the owner id
    oldest = min(stored, key=lambda run: run.summary["saved_at"])
    assert oldest.summary["step"] == 3 and oldest.summary["losses"]["loss"]
    reopened = manager.reopen(ALICE, oldest.id)
    state = reopened.model_copy().state_dict()
    assert state.keys() == weights[oldest.id].keys()
    assert all(torch.equal(state[k], weights[oldest.id][k]) for k in state)
    tensors, meta = checkpoint.read_checkpoint(oldest.weights)
    assert meta["progress"]["step"] == 3
    assert manager.jobs_held() == 2  # reopening counts towards the few kept in memory
    with pytest.raises(NotYourJobError):
        manager.remove(reopened.id, BOB)
    manager.end_session(ALICE)
    assert manager.jobs_held() == 0  # a session that ended keeps nothing in memory


def test_an_ended_run_in_memory_holds_its_snapshot_not_its_weights_and_reopens_equal(tmp_path):
    manager = JobManager(max_running=1, heartbeat_timeout=0, store=RunStore(tmp_path / "store"))
    config = dataclasses.replace(TINY, arch_config={"hidden_sizes": (64,)})
    job = manager.submit(config, owner=ALICE)
    assert job.wait(60) and job.state == "finished"
    kept = manager.get(job.id)
    assert isinstance(kept, EndedRun) and manager.jobs_held() == 1  # in memory, to be looked at
    weights = sum(p.nbytes for p in job.model.parameters())  # 784*64 + 64 + 64*10 + 10 floats
    assert weights == (784 * 64 + 64 + 64 * 10 + 10) * 4
    # The trained job held its weights, their initial copy, gradients and Adam's two moments;
    # what stays holds none of them, only its snapshot (arrays) and curves.
    assert tensors_reachable(job) >= 5 * weights
    assert tensors_reachable(kept) == 0
    assert 0 < kept.held_bytes() < weights
    snap, kept_snap = job.snapshot(), kept.snapshot()
    assert kept_snap["losses"] == snap["losses"] and kept_snap["step"] == snap["step"] == 3
    assert kept_snap["final_metrics"] == snap["final_metrics"]
    assert [s["step"] for s in kept_snap["snapshots"]] == [s["step"] for s in snap["snapshots"]]
    assert (kept_snap["state"], kept_snap["reason"]) == (snap["state"], snap["reason"])
    # Its weights come back from the store: the same tensors, the same outputs.
    x = torch.rand(16, 1, 28, 28)
    original, reopened = job.model_copy(), kept.model_copy()
    assert reopened.state_dict().keys() == original.state_dict().keys()
    assert all(torch.equal(reopened.state_dict()[k], v) for k, v in original.state_dict().items())
    with torch.no_grad():
        assert torch.equal(reopened(x), original(x))
    assert not reopened.training  # a copy in eval mode: the run itself still holds no tensor
    assert tensors_reachable(kept) == 0
    # Its download is the whole checkpoint (optimizer state too), as the store holds it.
    [stored] = manager.stored_runs(ALICE)
    tensors, meta = checkpoint.read_checkpoint(kept.save_checkpoint(tmp_path / "download"))
    stored_tensors, stored_meta = checkpoint.read_checkpoint(stored.weights)
    assert tensors.keys() == stored_tensors.keys()
    assert len(tensors) > len(original.state_dict())  # the optimizer state is in it
    assert all(torch.equal(tensors[name], stored_tensors[name]) for name in tensors)
    assert meta["progress"] == stored_meta["progress"] and meta["progress"]["step"] == 3
    assert not kept.stop() and not kept.pause() and kept.wait(0)
    trained = weakref.ref(job.model)
    del job, original
    gc.collect()
    assert trained() is None  # nothing holds the trained model once the run is stored


def test_a_reopened_run_is_kept_without_its_weights(tmp_path):
    manager = JobManager(
        max_running=1, heartbeat_timeout=0, store=RunStore(tmp_path), runs_in_memory=1,
        queue_per_student=9,
    )  # fmt: skip
    first = manager.submit(TINY, owner=ALICE)
    assert first.wait(60)
    expected = first.model_copy().state_dict()
    second = manager.submit(TINY, owner=ALICE)
    assert second.wait(60) and manager.jobs_held() == 1  # the first left memory
    reopened = manager.reopen(ALICE, first.id)
    assert isinstance(reopened, EndedRun) and tensors_reachable(reopened) == 0
    assert reopened.latest_snapshot()["step"] == 3  # its task's snapshot, taken again
    state = reopened.model_copy().state_dict()
    assert all(torch.equal(state[k], v) for k, v in expected.items())


def test_the_classs_ended_runs_stay_within_the_byte_budget_each_open_session_keeping_its_newest(
    tmp_path,
):
    store = RunStore(tmp_path)
    probe = JobManager(max_running=1, heartbeat_timeout=0, store=store)
    job = probe.submit(TINY, owner=CAROL)
    assert job.wait(60)
    one_run = probe.get(job.id).held_bytes()
    budget = int(2.5 * one_run)  # room for two ended runs of this size
    manager = JobManager(
        max_running=1, heartbeat_timeout=0, store=store, runs_in_memory=3, queue_per_student=9,
        ended_runs_bytes=budget,
    )  # fmt: skip
    manager.open_session(ALICE)
    manager.open_session(BOB)
    alice = []
    for _ in range(3):
        job = manager.submit(TINY, owner=ALICE)
        assert job.wait(60)
        alice.append(job.id)
        kept = [j for j in manager.jobs() if isinstance(j, EndedRun)]
        assert sum(run.held_bytes() for run in kept) <= budget
    # Alice's oldest left for the budget (runs_in_memory alone would keep 3); it is in the store.
    assert [j.id for j in manager.jobs(ALICE)] == alice[1:]
    assert {run.id for run in manager.stored_runs(ALICE)} == set(alice)
    manager.ended_runs_bytes = 0  # no budget at all: each open session still keeps its newest
    bob = manager.submit(TINY, owner=BOB)
    assert bob.wait(60)
    assert [j.id for j in manager.jobs()] == [alice[-1], bob.id]


def test_per_student_bookkeeping_is_dropped_once_a_student_has_left(tmp_path):
    manager = JobManager(
        max_running=4, heartbeat_timeout=0, store=RunStore(tmp_path), jobs_per_student=1
    )
    trained = []
    for index in range(1000):
        owner = f"{index:032x}"
        manager.open_session(owner)
        manager.set_label(owner, f"student {index}")
        if index % 100 == 0:  # some train a run: turns served, runs stored and kept
            trained.append(manager.submit(TINY, owner=owner))
            assert trained[-1].wait(60)
        if index % 100 == 50:  # some leave with a job queued
            manager.set_max_running(0)
            trained.append(manager.submit(LONG, owner=owner))
        manager.end_session(owner)
        manager.set_max_running(4)
    for job in trained:
        assert job.wait(60)
    assert manager.jobs_held() == 0
    assert manager.owners_tracked() == 0
    assert not (manager.labels or manager._served or manager._ended_sessions)
    assert len(manager.stored_runs(f"{0:032x}")) == 1  # what they trained is still in the store


def test_a_run_that_left_memory_is_saved_from_the_store(tmp_path):
    manager = JobManager(
        max_running=1, heartbeat_timeout=0, store=RunStore(tmp_path / "store"), runs_in_memory=0
    )
    job = manager.submit(TINY, owner=ALICE)
    assert job.wait(60) and job.state == "finished"
    assert manager.jobs_held() == 0
    [stored] = manager.stored_runs(ALICE)
    saved = manager.save_checkpoint(ALICE, job.id, tmp_path / "download" / "mlp-run")
    assert saved == tmp_path / "download" / f"mlp-run{checkpoint.SUFFIX}"
    tensors, meta = checkpoint.read_checkpoint(saved)
    stored_tensors, _ = checkpoint.read_checkpoint(stored.weights)
    assert tensors.keys() == stored_tensors.keys()
    assert all(torch.equal(tensors[name], stored_tensors[name]) for name in tensors)
    with pytest.raises(UnknownNameError):  # another session's run is not found by its id
        manager.save_checkpoint(BOB, job.id, tmp_path / "elsewhere")


def test_the_store_keeps_only_the_most_recently_read_summaries_parsed(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "SUMMARY_CACHE_ENTRIES", 3)
    store = RunStore(tmp_path)
    folder = store.folder(ALICE)
    folder.mkdir(parents=True)
    for index in range(5):  # runs as the store writes them: a summary beside its weights
        (folder / f"run-{index}{checkpoint.SUFFIX}").write_bytes(b"")
        summary = {"id": f"run-{index}", "saved_at": index}
        (folder / f"run-{index}{store_module.SUMMARY_SUFFIX}").write_text(json.dumps(summary))
    assert [run.id for run in store.runs(ALICE)] == [f"run-{i}" for i in (4, 3, 2, 1, 0)]
    assert store.summaries_cached() == 3
    assert [run.id for run in store.all_runs()] == [f"run-{i}" for i in (4, 3, 2, 1, 0)]
    assert store.summaries_cached() == 3


# ---- abandoned jobs and shutdown -----------------------------------------------------------------


def test_a_job_nobody_looks_at_stops_at_the_heartbeat():
    manager = JobManager(max_running=1, heartbeat_timeout=0.3)
    job = manager.submit(LONG, owner=ALICE)
    assert job.wait(30)
    assert job.state == "stopped" and "has not looked at it for 0.3 s" in job.reason


def test_shutdown_stops_every_job_and_stores_the_running_ones(tmp_path):
    store = RunStore(tmp_path)
    manager = JobManager(max_running=1, heartbeat_timeout=0, store=store)
    running = manager.submit(LONG, owner=ALICE)
    queued = manager.submit(TINY, owner=BOB)
    while not running.snapshot().get("step"):
        running.wait(0.05)
    assert manager.shutdown() == [running, queued]
    assert running.state == "stopped" and "shut down" in running.reason
    assert queued.state == "stopped"
    assert [run.id for run in store.runs(ALICE)] == [running.id]
    with pytest.raises(Exception, match="shutting down"):
        manager.submit(TINY, owner=CAROL)


def test_a_run_dropped_from_memory_is_freed_and_the_heap_trimmed(tmp_path, monkeypatch):
    trims = []
    monkeypatch.setattr(manager_module, "give_freed_memory_back", lambda: trims.append(1))
    manager = JobManager(
        max_running=1, heartbeat_timeout=0, store=RunStore(tmp_path), runs_in_memory=1,
        queue_per_student=9,
    )  # fmt: skip
    first = manager.submit(TINY, owner=ALICE)
    assert first.wait(60) and first.state == "finished"
    model = weakref.ref(first.model)
    second = manager.submit(TINY, owner=ALICE)
    assert second.wait(60) and second.state == "finished"
    del first
    gc.collect()
    assert model() is None  # nothing else holds the dropped run's model
    assert len(trims) == 3  # as each of the two was stored, and as the first left memory


def test_freed_memory_goes_back_where_the_c_library_allows():
    assert give_freed_memory_back() is (platform.libc_ver()[0] == "glibc")


def test_a_full_collection_runs_at_most_every_30_s_and_the_heap_is_trimmed_every_time(
    monkeypatch,
):
    # A full collection holds the interpreter lock (0.2-0.9 s): every page and job waits.
    collections, trims, clock = [], [], [1000.0]
    monkeypatch.setattr(threads_module.gc, "collect", lambda: collections.append(clock[0]))
    monkeypatch.setattr(threads_module, "trim_heap", lambda: trims.append(clock[0]) or True)
    monkeypatch.setattr(threads_module.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(threads_module, "_last_full_collection", -math.inf)
    for at in (1000.0, 1001.0, 1029.9, 1030.0, 1031.0):  # five runs end
        clock[0] = at
        assert give_freed_memory_back()
    assert collections == [1000.0, 1030.0] and trims == [1000.0, 1001.0, 1029.9, 1030.0, 1031.0]
    assert threads_module.FULL_COLLECTION_EVERY_S == 30.0


class Cycle:
    """An object that refers to itself: only a garbage collection frees it."""

    def __init__(self) -> None:
        self.me = self


def test_frozen_objects_are_left_out_of_later_collections():
    alive_at_the_freeze = Cycle()
    frozen_ref = weakref.ref(alive_at_the_freeze)
    try:
        frozen = threads_module.freeze_loaded_objects()
        assert frozen == gc.get_freeze_count() > 10_000  # torch and the rest, imported here
        del alive_at_the_freeze
        gc.collect()
        assert frozen_ref() is not None  # frozen: no collection looks at it again
        made_later = Cycle()
        later_ref = weakref.ref(made_later)
        del made_later
        gc.collect()
        assert later_ref() is None  # what sessions and runs make afterwards is collected
    finally:
        gc.unfreeze()  # the rest of the test session collects as before
    gc.collect()
    assert frozen_ref() is None
