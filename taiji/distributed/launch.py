"""Launcher: start N copies of a script as one MPI job (``taiji launch`` / ``python -m
taiji.distributed.launch``).

    python -m taiji.distributed.launch -n 2 train.py --epochs 3
    python -m taiji.distributed.launch -n 8 --hostfile hosts.txt train.py   # multi-host

It runs ``mpirun`` with the flags a laptop, a container or CI needs (``--oversubscribe``,
``--allow-run-as-root`` when root, shared-memory transport on one host) and runs the script in
each rank under a guard: if any rank raises (or exits non-zero), it prints ``rank N failed:
...`` and aborts the whole job, so no rank hangs waiting for the dead one.
"""
from __future__ import annotations

import argparse
import os
import runpy
import shlex
import shutil
import subprocess
import sys
import traceback

from taiji.distributed._backend import INSTALL_HINT


def mpirun_command(nproc: int, script_argv: list, hostfile: str | None = None,
                   extra: list | None = None, python: str | None = None) -> list:
    """The ``mpirun`` command line that runs ``script_argv`` on ``nproc`` ranks."""
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        raise FileNotFoundError(f"taiji launch: `mpirun` was not found; {INSTALL_HINT}")
    cmd = [mpirun, "-n", str(nproc), "--bind-to", "none"]
    if "Open MPI" in _mpirun_version(mpirun) or "OpenRTE" in _mpirun_version(mpirun):
        cmd += ["--oversubscribe"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd += ["--allow-run-as-root"]
        if hostfile:
            cmd += ["--hostfile", hostfile, "-x", "PATH", "-x", "PYTHONPATH"]
        else:  # one host: shared memory only (works in sandboxes without network devices)
            cmd += ["--mca", "btl", "self,vader", "--mca", "btl_vader_single_copy_mechanism",
                    "none"]
    elif hostfile:
        cmd += ["-f", hostfile]  # MPICH's hydra
    cmd += list(extra or [])
    cmd += [python or sys.executable, "-m", "taiji.distributed.launch", "--worker"]
    return cmd + list(script_argv)


def _mpirun_version(mpirun: str) -> str:
    try:
        return subprocess.run([mpirun, "--version"], capture_output=True, text=True,
                              timeout=20).stdout
    except Exception:
        return ""


def _rank_from_env() -> str:
    for k in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"):
        if k in os.environ:
            return os.environ[k]
    return "?"


def _abort(code: int) -> None:
    """Abort the whole MPI job if MPI is up in this process, else just exit."""
    mpi = sys.modules.get("mpi4py.MPI")
    try:
        if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
            mpi.COMM_WORLD.Abort(code)
    finally:
        os._exit(code)


def run_worker(script_argv: list) -> None:
    """Run ``script_argv[0]`` as ``__main__`` in this rank; abort the job if it fails."""
    if not script_argv:
        raise SystemExit("taiji launch: no script given")
    sys.argv = list(script_argv)
    script = script_argv[0]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        if e.code in (None, 0):
            raise
        sys.stdout.flush()
        sys.stderr.write(f"taiji.distributed: rank {_rank() } failed: exited with status "
                         f"{e.code}; aborting the job\n")
        sys.stderr.flush()
        _abort(e.code if isinstance(e.code, int) else 1)
    except BaseException as e:  # noqa: BLE001 - every failure must take the job down
        sys.stdout.flush()
        traceback.print_exc()
        sys.stderr.write(f"taiji.distributed: rank {_rank()} failed: "
                         f"{type(e).__name__}: {e}; aborting the job\n")
        sys.stderr.flush()
        _abort(1)
    sys.stdout.flush()


def _rank() -> str:
    from taiji.distributed import is_initialized, get_rank
    return str(get_rank()) if is_initialized() else _rank_from_env()


def main(argv: list | None = None) -> int:
    """``taiji launch`` entry point; returns mpirun's exit status.

    Example:
        >>> main(["-n", "2", "train.py", "--epochs", "1"])   # doctest: +SKIP
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--worker"]:
        run_worker(argv[1:])
        return 0
    ap = argparse.ArgumentParser(
        prog="taiji launch", description="Run a script on N processes (an MPI job).")
    ap.add_argument("-n", "--nproc", type=int, default=2, help="number of ranks (default 2)")
    ap.add_argument("--hostfile", help="MPI hostfile for multi-host runs")
    ap.add_argument("--mpirun-args", default="", help="extra mpirun arguments (one string)")
    ap.add_argument("--dry-run", action="store_true", help="print the mpirun command only")
    ap.add_argument("script", help="the Python script to run on every rank")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    a = ap.parse_args(argv)
    if a.nproc < 1:
        ap.error("-n must be at least 1")
    try:
        cmd = mpirun_command(a.nproc, [a.script] + a.args, a.hostfile,
                             shlex.split(a.mpirun_args))
    except FileNotFoundError as e:
        print(e, file=sys.stderr)
        return 2
    if a.dry_run:
        print(shlex.join(cmd))
        return 0
    return subprocess.call(cmd, env=launch_env(a.nproc))


def launch_env(nproc: int) -> dict:
    """The ranks' environment: unless set, each rank's BLAS gets ``cores // nproc`` threads
    (as torchrun does; N ranks x all-core BLAS oversubscribe the machine: measured 10x slower
    on 2 cores) and MPI yields the core while it waits."""
    env = dict(os.environ)
    threads = str(max(1, (os.cpu_count() or 1) // nproc))
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env.setdefault(k, threads)
    env.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")
    return env


if __name__ == "__main__":
    sys.exit(main())
