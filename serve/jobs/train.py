"""Submitting `python -m train.run --config ...` as a Ray job, and reading its status back.

With a Ray Jobs API address (`train_jobs_address` / RAY_JOBS_ADDRESS: a cluster's dashboard, as on
KubeRay) the run goes through `ray.job_submission.JobSubmissionClient`, so it is scheduled by the
cluster, outlives this app and shows up in `ray job list`. The embedded local Ray starts without a
dashboard (cluster/ray_runtime.py), so there the same entrypoint runs as a detached local
subprocess whose exit code and log land in <data_dir>/train/<id>/, which a restarted app can still
read. Both paths record the run as a `train` job row so GET /train/{id} has one place to look.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from cluster.errors import InputError

_STATUS_MAP = {
    "PENDING": "queued",
    "RUNNING": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "STOPPED": "cancelled",
}


def validate_config(config: dict[str, Any] | None, config_path: str | None, overrides: list[str]) -> None:
    """Validate with train's own loader (`train.config.load_train_config`) when it is installed, so a
    bad key is a 400 naming the key now rather than a failed Ray job later."""
    if config_path is not None and not Path(config_path).is_file():
        raise InputError(f"config_path {config_path!r} does not exist on the server; see train/configs/")
    try:
        from train.config import load_train_config
    except ImportError:
        return
    if config_path is not None:
        load_train_config(config_path, overrides)
        return
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(config, f)
    try:
        load_train_config(f.name, overrides)
    finally:
        os.unlink(f.name)


def submit(
    job_id: str,
    run_dir: Path,
    config: dict[str, Any] | None,
    config_path: str | None,
    overrides: list[str],
    address: str | None,
) -> dict[str, Any]:
    """Start the run; returns {"backend", "submission_id", "run_dir"} to store on the job row."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if config is not None:
        cfg = run_dir / "config.yaml"
        cfg.write_text(yaml.safe_dump(config))
        config_path = str(cfg)
    assert config_path is not None
    args = ["-m", "train.run", "--config", config_path, *overrides]
    address = address or os.environ.get("RAY_JOBS_ADDRESS")
    if address:
        from ray.job_submission import JobSubmissionClient

        client = JobSubmissionClient(address)
        sid = client.submit_job(
            entrypoint="python " + " ".join(shlex.quote(a) for a in args),
            submission_id=job_id,
            runtime_env={"working_dir": "."},
        )
        return {"backend": "ray-jobs", "submission_id": sid, "address": address, "run_dir": str(run_dir)}
    log = run_dir / "log.txt"
    rc = run_dir / "rc"
    script = (
        f"{shlex.quote(sys.executable)} {' '.join(shlex.quote(a) for a in args)} > {shlex.quote(str(log))} 2>&1; "
        f"echo $? > {shlex.quote(str(rc))}"
    )
    proc = subprocess.Popen(
        ["sh", "-c", script],
        start_new_session=True,
        cwd=os.getcwd(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    (run_dir / "pid").write_text(str(proc.pid))
    return {"backend": "local", "submission_id": job_id, "pid": proc.pid, "run_dir": str(run_dir)}


def status(info: dict[str, Any]) -> tuple[str, str | None, str]:
    """(status, error, log tail) of a submitted run."""
    run_dir = Path(info["run_dir"])
    if info.get("backend") == "ray-jobs":
        from ray.job_submission import JobSubmissionClient

        client = JobSubmissionClient(info["address"])
        st = str(client.get_job_status(info["submission_id"]))
        state = _STATUS_MAP.get(st.split(".")[-1], "running")
        logs = client.get_job_logs(info["submission_id"])[-4000:]
        return state, (logs[-500:] if state == "failed" else None), logs
    log = (run_dir / "log.txt").read_text(errors="replace")[-4000:] if (run_dir / "log.txt").exists() else ""
    rc = run_dir / "rc"
    if not rc.exists():
        return "running", None, log
    code = int(rc.read_text().strip() or 1)
    if code == 0:
        return "succeeded", None, log
    return "failed", f"train.run exited with code {code}: {log[-500:]}", log
