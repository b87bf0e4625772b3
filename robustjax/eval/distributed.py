"""Multi-process runs: ``jax.distributed`` start-up with bounded waits, and a localhost launcher.

A grid on several hosts is one ``python -m robustjax.eval`` per host with ``JAX_COORDINATOR_ADDRESS``,
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` set (or a SLURM / Open MPI launch); process 0 writes
the results store. :func:`initialize` adds what makes such a run safe to leave alone: every wait
is bounded (``ROBUSTJAX_DISTRIBUTED_TIMEOUT_S`` for the start-up, default 300 s;
``ROBUSTJAX_HEARTBEAT_TIMEOUT_S`` for noticing a dead peer, default 100 s: the survivors then end
with JAX's "another task died" error instead of hanging in a collective), and on CPU the
cross-process collectives use gloo (XLA:CPU has no other).

:class:`LocalCluster` starts N processes of one command on this host (coordinator 127.0.0.1 on a
free port, D CPU devices each), which is how the multi-process path is tested on one machine:
``python -m robustjax.eval.distributed --processes 2 --devices 2 -- --config ... --out ...``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def env_seconds(name: str, default: int) -> int:
    """The whole number of seconds in environment variable ``name`` (``default`` when it is unset),
    surrounding blanks ignored. Raises ValueError naming the variable when the value is not a whole
    number or is below 1, so a mistyped timeout fails at start-up instead of becoming a hang."""
    raw = os.environ.get(name, str(default)).strip()
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of seconds, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be >= 1 second, got {value}")
    return value


def initialize(**kwargs) -> None:
    """``jax.distributed.initialize(**kwargs)`` with bounded start-up and heartbeat timeouts (from
    the environment, see the module doc) and gloo collectives when the platform is CPU."""
    import jax

    platforms = os.environ.get("JAX_PLATFORMS", "") or str(jax.config.jax_platforms or "")
    if platforms.split(",")[0].strip() in ("", "cpu"):
        # Only the CPU client reads this; it must be set before the backend starts.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kwargs.setdefault("initialization_timeout", env_seconds("ROBUSTJAX_DISTRIBUTED_TIMEOUT_S", 300))
    kwargs.setdefault("heartbeat_timeout_seconds", env_seconds("ROBUSTJAX_HEARTBEAT_TIMEOUT_S", 100))
    jax.distributed.initialize(**kwargs)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ClusterError(RuntimeError):
    """A local multi-process run failed: ``returncodes`` per process, ``logs`` their stderr tails."""

    def __init__(self, message, returncodes, logs):
        super().__init__(message)
        self.returncodes, self.logs = returncodes, logs


class LocalCluster:
    """``processes`` copies of ``command`` on this host, each with ``devices`` CPU devices, joined by
    ``jax.distributed`` through a coordinator on 127.0.0.1 at a free port.

    Each process's stdout and stderr go to ``logdir/process-<i>.{out,err}``. :meth:`wait` returns
    the return codes when all succeed, and otherwise ends every process still running (after
    ``grace_s`` for them to notice on their own) and raises :class:`ClusterError` naming the first
    that failed; at ``timeout_s`` it ends them all and raises too. Nothing is left running.
    """

    def __init__(self, command: list[str], processes: int, devices: int, logdir: str | os.PathLike,
                 env: dict | None = None, heartbeat_s: int = 10):
        if processes < 1 or devices < 1:
            raise ValueError(f"processes and devices must be >= 1, got {processes} and {devices}")
        self.command, self.n, self.devices = list(command), processes, devices
        self.logdir = Path(logdir)
        self.env = dict(os.environ if env is None else env)
        self.heartbeat_s = heartbeat_s
        self.procs: list[subprocess.Popen] = []

    def start(self) -> "LocalCluster":
        self.logdir.mkdir(parents=True, exist_ok=True)
        address = f"127.0.0.1:{free_port()}"
        for i in range(self.n):
            env = dict(self.env, JAX_COORDINATOR_ADDRESS=address, JAX_NUM_PROCESSES=str(self.n), JAX_PROCESS_ID=str(i),
                       JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={self.devices}",
                       ROBUSTJAX_HEARTBEAT_TIMEOUT_S=str(self.heartbeat_s), PYTHONUNBUFFERED="1")
            env.setdefault("ROBUSTJAX_DISTRIBUTED_TIMEOUT_S", "120")
            out = open(self.logdir / f"process-{i}.out", "w")
            err = open(self.logdir / f"process-{i}.err", "w")
            self.procs.append(subprocess.Popen(self.command, env=env, stdout=out, stderr=err, start_new_session=True))
            out.close()
            err.close()
        return self

    def log(self, i: int, tail: int = 4000) -> str:
        path = self.logdir / f"process-{i}.err"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def stop(self) -> None:
        """End every process still running (SIGTERM, then SIGKILL after 5 s) and reap them all."""
        for p in self.procs:
            if p.poll() is None:
                _signal(p, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(p, signal.SIGKILL)
                p.wait()

    def wait(self, timeout_s: float = 600, grace_s: float | None = None) -> list[int]:
        grace_s = self.heartbeat_s + 30 if grace_s is None else grace_s
        deadline = time.monotonic() + timeout_s
        failed_at = None
        try:
            while True:
                codes = [p.poll() for p in self.procs]
                if all(c == 0 for c in codes):
                    return codes
                bad = [i for i, c in enumerate(codes) if c not in (None, 0)]
                if bad and failed_at is None:
                    failed_at = (bad[0], time.monotonic())
                ended = all(c is not None for c in codes)
                if failed_at is not None and (ended or time.monotonic() - failed_at[1] > grace_s):
                    i = failed_at[0]
                    self.stop()
                    codes = [p.returncode for p in self.procs]
                    others = [c for k, c in enumerate(codes) if k != i]
                    raise ClusterError(f"process {i} of {self.n} failed (return code {codes[i]}); the others ended "
                                       f"with {others}. Its log ends:\n{self.log(i, 1500)}",
                                       codes, [self.log(k) for k in range(self.n)])
                if time.monotonic() > deadline:
                    self.stop()
                    codes = [p.returncode for p in self.procs]
                    raise ClusterError(f"the {self.n} processes did not finish within {timeout_s:.0f} s; all ended "
                                       f"(return codes {codes})", codes, [self.log(k) for k in range(self.n)])
                time.sleep(0.1)
        finally:
            if any(p.poll() is None for p in self.procs):
                self.stop()


def _signal(p: subprocess.Popen, sig) -> None:
    try:
        os.killpg(p.pid, sig)  # the process and anything it started (its own session)
    except ProcessLookupError:
        pass


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m robustjax.eval.distributed",
                                description="Run `python -m robustjax.eval ARGS` as N jax.distributed processes "
                                "on this host.")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--devices", type=int, default=1, help="CPU devices per process")
    p.add_argument("--timeout", type=float, default=3600, help="seconds before every process is ended")
    p.add_argument("--logdir", default="distributed-logs")
    p.add_argument("args", nargs=argparse.REMAINDER, help="-- then the arguments of python -m robustjax.eval")
    a = p.parse_args(argv)
    args = a.args[1:] if a.args[:1] == ["--"] else a.args
    cluster = LocalCluster([sys.executable, "-m", "robustjax.eval", *args], a.processes, a.devices, a.logdir).start()
    try:
        cluster.wait(a.timeout)
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print((Path(a.logdir) / "process-0.out").read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
