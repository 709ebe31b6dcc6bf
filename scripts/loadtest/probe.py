"""`python scripts/loadtest/probe.py [streamlit run options]`: the app in this process, with a
thread that appends what the process holds to a JSON-lines file every PROBE_EVERY seconds.

    PROBE_OUT=/tmp/probe.jsonl python scripts/loadtest/probe.py --server.port 8610 \\
        --server.headless true
    python scripts/loadtest.py --scenario soak --url http://127.0.0.1:8610 --pid <its pid>

Each line: resident MB, Python objects, the bytes of the distinct tensor storages and NumPy arrays
alive, Streamlit's media files (count, bytes) and deferred downloads, sessions, the manager's jobs
in memory, threads, and the object types that grew since the second line. This is how the soak's
growth was traced to the ended runs kept in memory (README, Classroom).

For investigation only, never in class: gc.get_objects() can hand out a tuple that is still
being built, and a page that was building it then fails (SystemError in tupleobject.c); one
page in a 4-minute soak of 5 students did.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import sys
import threading
import time
from pathlib import Path

OUT = Path(os.environ.get("PROBE_OUT", "/tmp/deeparch-probe.jsonl"))
EVERY_S = float(os.environ.get("PROBE_EVERY", "30"))
TYPES_SHOWN = 25


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def array_bytes(objects: list) -> dict[str, float]:
    """MB of the distinct tensor storages and of the NumPy arrays that own their memory."""
    import numpy  # late import: loaded by the app, not before streamlit starts
    import torch  # late import: as numpy

    storages: dict[int, int] = {}
    arrays = 0
    for obj in objects:
        if isinstance(obj, torch.Tensor):
            try:
                storage = obj.untyped_storage()
            except (RuntimeError, NotImplementedError):  # meta, sparse: no storage of its own
                continue
            storages[storage.data_ptr()] = storage.nbytes()
        elif isinstance(obj, numpy.ndarray) and obj.base is None:
            arrays += obj.nbytes
    return {"tensor_mb": sum(storages.values()) / 2**20, "ndarray_mb": arrays / 2**20}


def streamlit_holdings() -> dict[str, int]:
    from streamlit import runtime  # late import: the running server's

    if not runtime.exists():
        return {}
    instance = runtime.get_instance()
    media = instance.media_file_mgr
    files = getattr(media._storage, "_files_by_id", {})  # the in-memory storage's files
    return {
        "media_files": len(files),
        "media_bytes": sum(len(file.content) for file in files.values()),
        "deferred_downloads": len(media._deferred_callables),
        "sessions": len(instance._session_mgr.list_sessions()),
    }


def jobs_in_memory() -> int | None:
    from deeparch.engine.manager import existing_manager  # late import: the app's manager

    manager = existing_manager()
    return manager.jobs_held() if manager is not None else None


def record(baseline: dict) -> dict:
    gc.collect()
    objects = gc.get_objects()
    counts = collections.Counter(type(obj).__name__ for obj in objects)
    line = {"t": round(time.time()), "rss_mb": round(resident_mb(), 1), "objects": len(objects)}
    line.update({k: round(v, 1) for k, v in array_bytes(objects).items()})
    del objects
    line.update(streamlit_holdings())
    line["jobs_in_memory"] = jobs_in_memory()
    line["threads"] = threading.active_count()
    # The first line's baseline would count torch's import: grow from the second one on.
    baseline["lines"] = baseline.get("lines", 0) + 1
    if baseline["lines"] == 2:
        baseline["counts"] = counts
    grown = counts - baseline.get("counts", counts)
    line["types_grown"] = grown.most_common(TYPES_SHOWN)
    return line


def probe_forever() -> None:
    baseline: dict = {}
    while True:
        time.sleep(EVERY_S)
        try:
            line = record(baseline)
        except Exception as error:  # noqa: BLE001  (the probe must never stop the server)
            line = {"t": round(time.time()), "error": repr(error)}
        with OUT.open("a") as out:
            out.write(json.dumps(line) + "\n")


def main() -> None:
    from streamlit.web import cli  # late import: after the probe thread exists

    threading.Thread(target=probe_forever, name="memory-probe", daemon=True).start()
    sys.argv = ["streamlit", "run", "app.py", *sys.argv[1:]]
    cli.main()


if __name__ == "__main__":
    main()
