"""Devices for the grid: multi-host start-up and a 1-D ``Mesh`` over the batch axis."""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

_started = False


def maybe_initialize_distributed() -> bool:
    """Call ``jax.distributed.initialize`` when a multi-process launch is detected.

    Detected from the standard environment: ``JAX_COORDINATOR_ADDRESS`` (with ``JAX_NUM_PROCESSES``
    and ``JAX_PROCESS_ID``), or a SLURM / Open MPI launch of more than one task (jax's own
    auto-detection fills in the rest). Single-process runs do nothing. Returns True if it initialised.
    """
    global _started
    if _started:
        return True
    env = os.environ
    kwargs = None
    if env.get("JAX_COORDINATOR_ADDRESS"):
        kwargs = {"coordinator_address": env["JAX_COORDINATOR_ADDRESS"]}
        if env.get("JAX_NUM_PROCESSES"):
            kwargs["num_processes"] = int(env["JAX_NUM_PROCESSES"])
        if env.get("JAX_PROCESS_ID"):
            kwargs["process_id"] = int(env["JAX_PROCESS_ID"])
    elif int(env.get("SLURM_NTASKS", "1")) > 1 or int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        kwargs = {}
    if kwargs is None:
        return False
    from robustjax.eval.distributed import initialize

    initialize(**kwargs)  # bounded start-up and heartbeat, gloo collectives on CPU
    _started = True
    return True


class BatchMesh:
    """All devices (of all processes) on one ``batch`` axis; batches are split across them."""

    def __init__(self, devices=None):
        self.devices = list(devices if devices is not None else jax.devices())
        self.mesh = Mesh(np.array(self.devices), ("batch",))
        self.data = NamedSharding(self.mesh, P("batch"))
        self.replicated = NamedSharding(self.mesh, P())
        self.process_index = jax.process_index()
        self.process_count = jax.process_count()

    @property
    def size(self) -> int:
        return len(self.devices)

    def global_batch(self, requested: int) -> int:
        """``requested`` rounded up to a multiple of the device count."""
        return -(-requested // self.size) * self.size

    def put(self, local: np.ndarray, global_rows: int) -> jax.Array:
        """This process's rows -> a global array sharded over the batch axis."""
        if self.process_count == 1:
            return jax.device_put(local, self.data)
        return jax.make_array_from_process_local_data(self.data, local, (global_rows, *local.shape[1:]))

    def describe(self) -> dict:
        d = self.devices[0]
        return {"devices": self.size, "processes": self.process_count, "platform": d.platform,
                "device_kind": getattr(d, "device_kind", d.platform)}
