"""Run a worker replica's threads at a lower CPU priority than the front door.

Why: on one machine (the 2-core dev box, or a node where Serve packs replicas together) Ray's
`num_cpus` only places replicas; it does not limit their CPU use. When a burst of submits starts
jobs, the analyzer's decode/whisper threads and the ingest's probes compete with the proxy and the
ingress for the same cores, and every submit waits behind them. A higher nice value (lower priority)
makes the kernel's scheduler hand the CPU to the HTTP path first while the workers still use every
idle cycle, so throughput is unchanged; on a quiet machine it changes nothing. On Linux the nice value
is per thread, so every existing thread of the process is lowered (threads started later inherit it).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("serve.deployments.priority")


def lower_priority(nice: int) -> int:
    """Raise this process's nice value to at least `nice` (0 leaves it alone); returns threads changed."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return 0
    tasks = Path("/proc/self/task")
    ids = [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [0]
    changed = 0
    for tid in ids:
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
                changed += 1
        except OSError:  # the thread ended meanwhile; raising one's own nice value is always allowed
            continue
    log.info("worker threads at nice %d (%d changed)", nice, changed)
    return changed
