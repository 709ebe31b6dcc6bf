"""The server process as the kernel sees it: resident memory, threads and CPU time over time."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def listening_pid(port: int) -> int | None:
    """The process listening on a local TCP port (from /proc/net/tcp and the fds), if ours."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{inode}]")
    if not inodes:
        return None
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(entry.name)
        except OSError:
            continue
    return None


def status_of(pid: int) -> dict[str, int]:
    """VmRSS (kB) and Threads from /proc/<pid>/status."""
    values = {}
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "Threads", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process (all its threads) from /proc/<pid>/stat."""
    text = (PROC / str(pid) / "stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def descendants(pid: int) -> list[int]:
    """Every process below pid (a Ray backend's raylet and workers, say)."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(text[text.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass
class Sample:
    t: float  # seconds since the sampler started
    rss_mb: float
    threads: int
    cpu_cores: float  # CPU time used since the previous sample / wall time between them
    children_rss_mb: float
    children: int  # processes below the server (a local Ray's raylet and workers)
    load_1m: float = 0.0  # the machine's 1-minute load average: how busy the cores were
    children_cores: float = 0.0  # the processes below it (a Ray backend trains there)


@dataclass
class Sampler:
    """Samples a process every `interval` seconds in the background of an asyncio program."""

    pid: int
    interval: float = 1.0
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._task: asyncio.Task | None = None
        self.t0 = time.monotonic()
        self._children_cpu: dict[int, float] = {}  # CPU seconds of each child at the last sample

    def sample(self) -> Sample | None:
        try:
            status = status_of(self.pid)
            cpu = cpu_seconds(self.pid)
        except OSError:
            return None
        children, below = 0, descendants(self.pid)
        children_cpu: dict[int, float] = {}
        for child in below:
            try:
                children += status_of(child).get("VmRSS", 0)
                children_cpu[child] = cpu_seconds(child)
            except OSError:
                continue
        now = time.monotonic()
        cores = children_cores = 0.0
        if getattr(self, "_last", None) is not None:
            last_t, last_cpu = self._last
            elapsed = max(1e-6, now - last_t)
            cores = (cpu - last_cpu) / elapsed
            # a child born since the last sample counts from 0; one that ended counts no more
            used = sum(t - self._children_cpu.get(c, 0.0) for c, t in children_cpu.items())
            children_cores = max(0.0, used) / elapsed
        self._last = (now, cpu)
        self._children_cpu = children_cpu
        sample = Sample(
            round(now - self.t0, 2),
            round(status.get("VmRSS", 0) / 1024, 1),
            status.get("Threads", 0),
            round(cores, 2),
            round(children / 1024, 1),
            len(below),
            round(os.getloadavg()[0], 2),
            round(children_cores, 2),
        )
        self.samples.append(sample)
        return sample

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def start(self) -> Sampler:
        self._last = None
        self._task = asyncio.create_task(self._run(), name="sampler")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.sample()

    def summary(self, every: float = 10.0) -> dict:
        """First, peak and last figures, and a thinned series (one sample per `every` s)."""
        if not self.samples:
            return {"pid": self.pid, "samples": 0}
        rss = [s.rss_mb for s in self.samples]
        series, next_t = [], 0.0
        for s in self.samples:
            if s.t >= next_t:
                series.append(
                    [s.t, s.rss_mb, s.threads, s.cpu_cores, s.children_rss_mb, s.children_cores]
                )
                next_t = s.t + every
        return {
            "pid": self.pid,
            "samples": len(self.samples),
            "rss_mb_first": rss[0],
            "rss_mb_peak": max(rss),
            "rss_mb_last": rss[-1],
            "threads_peak": max(s.threads for s in self.samples),
            "threads_last": self.samples[-1].threads,
            "cpu_cores_peak": max(s.cpu_cores for s in self.samples),
            "children_cores_peak": max(s.children_cores for s in self.samples),
            "children_peak": max(s.children for s in self.samples),
            "children_rss_mb_peak": max(s.children_rss_mb for s in self.samples),
            "load_1m_min": min(s.load_1m for s in self.samples),
            "load_1m_max": max(s.load_1m for s in self.samples),
            "series_columns": [
                "t_s",
                "rss_mb",
                "threads",
                "cpu_cores",
                "children_rss_mb",
                "children_cores",
            ],  # fmt: skip
            "series": series,
        }

    def rss_at(self, t: float) -> float | None:
        """Resident memory at the first sample at or after t seconds."""
        for s in self.samples:
            if s.t >= t:
                return s.rss_mb
        return None
