"""The Ray backend: jobs train in Ray worker processes, on this machine or across a cluster.

DEEPARCH_BACKEND=ray (ClassSettings.backend) makes deeparch.engine.backends.make_backend return a
RayBackend: it joins the cluster at ClassSettings.ray_address or RAY_ADDRESS, or else starts a
local Ray on 127.0.0.1. Ray is imported by this module's functions only, so a server on the
thread backend never loads it.

Workers are a pool of reusable Ray actors (deeparch.engine.ray_worker.Worker), each reserving
ray_cpus_per_job cores (and a fraction of a GPU with ray_gpus_per_job) and training up to
ray_jobs_per_worker jobs, which take turns on them (slice_s each, as on the thread backend): a
class on few cores then trains away from the web server's interpreter, and an arriving student's
job starts at once on a warm worker. Measured here, a fresh actor trains its first step about 4 s
after it is asked for (Python, torch and the dataset loaded), a warm one about 20 ms after
(README, "Beyond one machine: Ray"), so the pool keeps a spare warm.

A queued job holds no worker: it is built once on a worker when submitted (so a ConfigError from
its dry run comes back at once, as the same error), and built again from its seed on the worker
that trains it when the manager starts it. A queued job that resumes a
checkpoint keeps it on disk, not in Ray's object store, until it starts (RayJob.set_aside).

On the server, a job is a RayJob (deeparch.engine.ray_job), the JobHandle pages use.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from deeparch.data import default_data_root
from deeparch.engine.checkpointing import WeightsFrom
from deeparch.engine.config import TrainConfig
from deeparch.engine.handle import JobHandle
from deeparch.engine.job import Scheduler
from deeparch.engine.ray_job import (
    CONTROL_WAIT_S,
    RayJob,
    RayJobError,
    first_line,
    is_worker_lost,
    ray_module,
    read_start,
)
from deeparch.engine.ray_worker import Worker
from deeparch.engine.recipe import JobRecipe
from deeparch.errors import DeeparchError

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # deeparch/, shipped to a cluster's workers
# Set before ray is imported, when this process starts a local Ray:
LOCAL_RAY_ENVIRONMENT = {
    # Ray's single-machine mode: every server of the instance listens on 127.0.0.1 only (in its
    # cluster mode they listen on every interface of the machine).
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    # Token authentication, chosen deliberately: whoever reaches a Ray instance can run any code
    # on it (Ray's security page). Ray then keeps a generated token in ~/.ray/auth_token.
    "RAY_AUTH_MODE": "token",
}
# Calls one worker answers at once besides its jobs' watch calls (each job's follower keeps one
# waiting for up to WATCH_S): controls, reads, a describe.
WORKER_CONCURRENCY = 32
# How long a submit waits for a worker to check its job: a fresh one takes seconds (a few here);
# longer means the cluster has no room for one (every page would hang on it otherwise).
DESCRIBE_WAIT_S = 120.0


# ---- Ray itself ---------------------------------------------------------------------------------


def worker_environment(local: bool) -> dict[str, Any]:
    """Ray's runtime_env for the workers: this server's deeparch, and its data folder."""
    data = {"DEEPARCH_DATA_DIR": str(default_data_root())}
    if local:
        # The same machine: import deeparch from where this process did.
        paths = [str(PACKAGE_DIR.parent), os.environ.get("PYTHONPATH", "")]
        return {"env_vars": {**data, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}}
    # A cluster's workers train with this server's deeparch (Ray ships the package to each node),
    # whatever they have installed; datasets are read from the same path on every node.
    return {"py_modules": [str(PACKAGE_DIR)], "env_vars": data}


def connect(address: str = "", **init_options: Any) -> bool:
    """Join the cluster at `address` (or RAY_ADDRESS); without one, start a local Ray on
    127.0.0.1 with token authentication and no dashboard. True when this call started Ray
    (disconnect() ends it)."""
    already = sys.modules.get("ray")
    if already is not None and already.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS", "")
    # Ray's C++ core prints a stack trace when the server is stopped with SIGTERM; a teacher
    # stopping the app should see it stop, not what looks like a crash.
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    if not address:
        for name, value in LOCAL_RAY_ENVIRONMENT.items():
            os.environ.setdefault(name, value)
    ray = ray_module()
    if address:
        options = {"address": address, "runtime_env": worker_environment(local=False)}
    else:
        # "local": a new instance, even where `ray start` left one that ray.init() would join.
        options = {
            "address": "local",
            "include_dashboard": False,
            "runtime_env": worker_environment(local=True),
        }
    init_in_a_lasting_thread(ray, **options, **init_options)
    node = ray.util.get_node_ip_address()
    if not address and node != "127.0.0.1":
        logger.warning(
            "the local Ray instance listens on %s, not only 127.0.0.1: ray was imported before "
            "deeparch could set %s",
            node,
            ", ".join(LOCAL_RAY_ENVIRONMENT),
        )
    return True


# Set by disconnect(): lets the thread that started Ray end (see init_in_a_lasting_thread).
_release = threading.Event()


def init_in_a_lasting_thread(ray: Any, **options: Any) -> None:
    """ray.init() from a thread that lives until disconnect().

    A local Ray's servers are child processes that Ray has the kernel kill when their parent
    dies, and on Linux the parent is the thread that started them: called from a page's script
    thread, which ends after each rerun, ray.init() would lose its GCS server seconds later and
    the web server with it ("Failed to connect to GCS within 60 seconds").
    """
    if threading.current_thread() is threading.main_thread():
        ray.init(**options)
        return
    outcome: dict[str, BaseException] = {}
    started = threading.Event()

    def start_and_stay() -> None:
        try:
            ray.init(**options)
        except BaseException as error:  # noqa: BLE001  (raised in the caller below)
            outcome["error"] = error
            started.set()
            return
        started.set()
        _release.wait()

    _release.clear()
    threading.Thread(target=start_and_stay, name="deeparch-ray", daemon=True).start()
    started.wait()
    if "error" in outcome:
        raise outcome["error"]


def disconnect() -> None:
    """Shut down Ray (this process's part of it, or the local instance it started)."""
    ray_module().shutdown()
    _release.set()


# ---- the pool of workers ------------------------------------------------------------------------


class WorkerPool:
    """Reusable worker actors, each training up to `jobs_per_worker` jobs (taking turns on its
    cores when more than one, `slice_s` each: ray_worker.Worker)."""

    def __init__(
        self,
        cpus_per_job: float,
        gpus_per_job: float,
        prestart: int = 0,
        jobs_per_worker: int = 1,
        slice_s: float = 0.0,
    ) -> None:
        self.cpus_per_job = float(cpus_per_job)
        self.gpus_per_job = float(gpus_per_job)
        self.jobs_per_worker = max(1, int(jobs_per_worker))
        self.slice_s = float(slice_s)
        options = {
            "num_cpus": self.cpus_per_job,
            "num_gpus": self.gpus_per_job,
            "max_concurrency": WORKER_CONCURRENCY + self.jobs_per_worker,
        }
        self._actor = ray_module().remote(Worker).options(**options)
        self._lock = threading.Lock()
        self._load: dict[Any, int] = {}  # worker -> jobs it trains now, in the order created
        self._where: dict[Any, Any] = {}  # worker -> ObjectRef of Worker.where()
        self._turn = 0
        self.closed = False
        for _ in range(prestart):
            self._load[self._new()] = 0

    @property
    def shared(self) -> bool:
        """Whether a worker trains several jobs at once (so one job's failure must not end it)."""
        return self.jobs_per_worker > 1

    def _new(self) -> Any:
        # answers once created (seconds)
        worker = self._actor.remote(int(self.cpus_per_job), self.jobs_per_worker, self.slice_s)
        self._where[worker] = worker.where.remote()
        worker.warm.remote()  # the data and torch's first optimizer, before a job asks
        return worker

    def acquire(self) -> Any:
        """A worker to train a job on: of those with room for another job, the one with the
        fewest (a started one before one still starting), else a new one (Ray creates it when
        the cluster has the resources). Workers that take turns keep one spare: once none is
        idle and the cluster has room for one more, another starts, so the next job spreads to
        a warm worker instead of sharing a busy one's cores or waiting seconds for a new one."""
        with self._lock:
            room = [worker for worker, jobs in self._load.items() if jobs < self.jobs_per_worker]
            started = [worker for worker in room if self._started(worker)]
            worker = min(started or room, key=self._load.__getitem__) if room else self._new()
            self._load[worker] = self._load.get(worker, 0) + 1
            spare = self.shared and all(self._load.values())
        if spare and len(self._load) < self.workers_that_fit():
            with self._lock:
                if all(self._load.values()) and not self.closed:
                    self._load[self._new()] = 0
        return worker

    def _started(self, worker: Any) -> bool:
        """Whether the worker's process is up (it answered where())."""
        ready, _ = ray_module().wait([self._where[worker]], timeout=0)
        return bool(ready)

    def workers_that_fit(self) -> int:
        """Workers the cluster can hold now: its CPUs (or GPUs) over one worker's share."""
        resources = ray_module().cluster_resources()
        fits = []
        if self.cpus_per_job:
            fits.append(resources.get("CPU", 0.0) / self.cpus_per_job)
        if self.gpus_per_job:
            fits.append(resources.get("GPU", 0.0) / self.gpus_per_job)
        return max(1, int(min(fits))) if fits else 1

    def release(self, worker: Any) -> None:
        with self._lock:
            if self._load.get(worker, 0) > 0:
                self._load[worker] -= 1

    def discard(self, worker: Any) -> None:
        """Forget a worker (it died, or is not to be trusted) and make sure it is gone."""
        with self._lock:
            self._load.pop(worker, None)
            self._where.pop(worker, None)
        try:
            ray_module().kill(worker, no_restart=True)
        except Exception:  # noqa: BLE001  (already dead, or Ray shut down: nothing to kill)
            logger.debug("killing a worker failed", exc_info=True)

    def any(self) -> Any:
        """A worker for a short piece of work (checking a job, a queued job's weights): an idle
        one, else the busy ones in turn, else a new idle one; one whose process is up before
        one still starting (a submit would wait seconds for it)."""
        with self._lock:
            workers = list(self._load)
            started = [worker for worker in workers if self._started(worker)]
            for group in (started, workers):
                idle = [worker for worker in group if self._load[worker] == 0]
                if idle:
                    return idle[-1]
                if group:
                    self._turn = (self._turn + 1) % len(group)
                    return group[self._turn]
            worker = self._new()
            self._load[worker] = 0
            return worker

    def where(self, worker: Any, timeout: float = CONTROL_WAIT_S) -> tuple[str, int]:
        """(host, process id) of a worker."""
        with self._lock:
            ref = self._where[worker]
        return ray_module().get(ref, timeout=timeout)

    def room(self) -> str:
        """Why no node of the cluster can hold one worker now (its largest node), or ''."""
        largest = {"CPU": 0.0, "GPU": 0.0}
        for node in ray_module().nodes():
            if not node.get("Alive"):
                continue
            resources = node.get("Resources", {})
            cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
            if cpus >= self.cpus_per_job and gpus >= self.gpus_per_job:
                return ""
            largest = max(largest, {"CPU": cpus, "GPU": gpus}, key=lambda r: (r["GPU"], r["CPU"]))
        return (
            f"each job asks for {self.cpus_per_job:g} CPU and {self.gpus_per_job:g} GPU "
            f"(ray_cpus_per_job, ray_gpus_per_job); the cluster's largest node has "
            f"{largest['CPU']:g} CPU and {largest['GPU']:g} GPU"
        )

    def jobs_held(self) -> int:
        """Jobs the pool's workers hold, all together (a released worker holds none)."""
        with self._lock:
            workers = list(self._load)
        calls = [worker.jobs_held.remote() for worker in workers]
        return sum(ray_module().get(calls, timeout=CONTROL_WAIT_S))

    def size(self) -> tuple[int, int]:
        """(idle, busy) workers."""
        with self._lock:
            idle = sum(1 for jobs in self._load.values() if jobs == 0)
            return idle, len(self._load) - idle

    def close(self) -> None:
        with self._lock:
            self.closed = True
            workers = list(self._load)
        for worker in workers:
            self.discard(worker)


# ---- the backend --------------------------------------------------------------------------------


class RayBackend:
    """Jobs as tasks on a pool of Ray worker actors (see the module's doc)."""

    name = "ray"

    def __init__(
        self,
        local: Any,
        cpus_per_job: float = 1.0,
        gpus_per_job: float = 0.0,
        address: str = "",
        prestart: int = 1,
        jobs_per_worker: int = 1,
        slice_s: float = 0.0,
    ) -> None:
        """`local` loads finished checkpoints (a ThreadBackend): they train nothing, so they hold
        no worker; `prestart` workers are created at once so the first job finds one warm; each
        worker trains up to `jobs_per_worker` jobs, taking turns of `slice_s` seconds."""
        self.local = local
        self._started_ray = connect(address)
        self.pool = WorkerPool(cpus_per_job, gpus_per_job, prestart, jobs_per_worker, slice_s)
        room = self.pool.room()
        if room:  # lab machines may still join; until one that fits does, jobs wait
            logger.warning("no Ray node can train a job yet: %s", room)

    def create(
        self,
        job_id: str,
        config: TrainConfig,
        owner: str | None,
        scheduler: Scheduler,
        resume: str | Path | None = None,
        weights_from: WeightsFrom | None = None,
    ) -> RayJob:
        """Check the job on a worker (validation, model, one dry-run batch, the parts it takes
        from a checkpoint) and return it queued; its errors are raised here, as the thread
        backend raises them. A checkpoint it starts from is read here, once, and travels to the
        workers as a Ray object (ray_worker.Start); the recipe lets a waiting job give it back."""
        start = read_start(resume, weights_from, config.arch)
        start_ref = ray_module().put(start) if start is not None else None
        described = self._describe(job_id, config, start_ref)
        recipe = JobRecipe(config, resume, weights_from)
        return RayJob(job_id, config, owner, scheduler, self.pool, described, start_ref, recipe)

    def _describe(self, job_id: str, config: TrainConfig, start_ref: Any) -> dict[str, Any]:
        ray = ray_module()
        for attempt in (1, 2):
            worker = self.pool.any()
            try:
                call = worker.describe.remote(job_id, config, start_ref)
                described = ray.get(call, timeout=DESCRIBE_WAIT_S)
            except ray.exceptions.GetTimeoutError:
                why = self.pool.room() or "the cluster is busy"
                raise RayJobError(
                    f"no Ray worker answered within {DESCRIBE_WAIT_S:g} s to check job {job_id}: "
                    f"{why}"
                ) from None
            except Exception as error:
                if not is_worker_lost(error):
                    raise
                self.pool.discard(worker)
                if attempt == 2:
                    raise RayJobError(
                        f"no Ray worker could check job {job_id}: {first_line(error)}"
                    ) from error
                continue
            if isinstance(described, DeeparchError):
                raise described
            return described
        raise AssertionError("unreachable")

    def load(self, job_id: str, path: str | Path, owner: str | None) -> JobHandle:
        return self.local.load(job_id, path, owner)

    def capacity(self) -> int:
        """Jobs the cluster can train at once now: the workers it can hold, times the jobs a
        worker trains."""
        return self.pool.workers_that_fit() * self.pool.jobs_per_worker

    def shutdown(self) -> None:
        """Stop every worker (their jobs end) and Ray itself if this backend started it."""
        self.pool.close()
        if self._started_ray:
            disconnect()
