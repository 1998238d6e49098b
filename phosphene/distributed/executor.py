"""Running phosphene's fixed tasks (mining shards, render batches) on Ray actors.

``RayExecutor(address)`` connects to Ray (``local`` / ``local:N`` starts a private instance on this
machine with N CPUs, ``auto`` joins the cluster this machine belongs to, ``HOST:PORT`` or
``ray://HOST:PORT`` an existing one). `RayExecutor.map` starts workers, actors that each receive
the job (model included) once and set it up once (``job.setup(device)``: the model on the actor's
GPU when it has one), then feeds them tasks, two in flight per actor. Results come back to the
driver, which alone writes the run folder, so the workers need no shared file system for outputs.

A worker that dies (process killed, node lost) is restarted by Ray and the task it held is handed
out again (at most ``max_retries`` times per task); an exception raised by the job itself stops the
map. Ray is an optional dependency (the ``ray`` extra, see `install_hint`): importing this module does
not import Ray; a missing Ray or an unreachable address is a `RayUnavailableError`, and so is a
HOST:PORT that does not answer as a Ray cluster within `CONNECT_TIMEOUT_S` (20 s; the wait ends at
SIGTERM or Ctrl-C, before Ray's own retrying, which would ignore both for minutes, begins).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ..errors import PhospheneError, install_hint

IN_FLIGHT_PER_WORKER = 2
RESTART_POLL_SECONDS = 0.2
RESTART_TIMEOUT_SECONDS = 300
CONNECT_TIMEOUT_S = 20.0  # a HOST:PORT must answer as a Ray cluster within this


class RayUnavailableError(PhospheneError):
    """Ray is not installed, cannot start, or the cluster address cannot be reached."""


class Job(Protocol):
    """What a worker runs: ``setup`` once per worker (process), then ``run`` once per task."""

    def setup(self, device: Any) -> Any: ...

    def run(self, context: Any, task: Any) -> Any: ...


def import_ray():
    """The ``ray`` module, or a one-line `RayUnavailableError` telling how to install it."""
    try:
        import ray
    except ImportError:
        raise RayUnavailableError(f"--ray needs Ray: {install_hint('ray')}") from None
    return ray


def _host_port(address: str) -> tuple[str, int]:
    hostport = address.removeprefix("ray://").split("/")[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailableError(f"bad Ray address {address!r}: use HOST:PORT, ray://HOST:PORT, auto "
                                  "or local[:N]")
    return host.strip("[]"), int(port)


def _check_reachable(address: str, deadline: float) -> None:
    """Fail fast on HOST:PORT addresses nothing listens on (Ray itself would retry for minutes)."""
    try:
        socket.create_connection(_host_port(address), timeout=min(5.0, _left(deadline))).close()
    except OSError as exc:
        raise RayUnavailableError(f"cannot reach Ray at {address} ({exc.strerror or exc})") from None


def _check_cluster(address: str, deadline: float) -> None:
    """Ask HOST:PORT for its Ray cluster id with Ray's own GCS client, before ``ray.init``: Ray
    retries a port where another service listens for minutes, deaf to SIGTERM. The client runs in
    a daemon thread that this one waits for until ``deadline``, so the wait is bounded and a signal
    ends it (no handler is installed yet: SIGTERM ends the process, Ctrl-C raises)."""
    try:
        from ray._raylet import GcsClient
    except ImportError:  # a Ray without this client: the TCP check is all there is
        return
    host, port = _host_port(address)
    answer: dict[str, Any] = {}

    def ask() -> None:
        try:
            answer["cluster"] = GcsClient(address=f"{host}:{port}").cluster_id
        except Exception as exc:  # RpcError, ConnectionError, ...
            answer["error"] = exc

    thread = threading.Thread(target=ask, name="phosphene-ray-probe", daemon=True)
    thread.start()
    thread.join(_left(deadline))
    if thread.is_alive():
        raise RayUnavailableError(f"no Ray cluster answered at {address} within {CONNECT_TIMEOUT_S:g} s "
                                  "(another service on that port? a Ray head listens on 6379 by default)")
    if "error" in answer:  # a timeout inside the client, or a cluster that refused it (auth, version)
        reason = _last_line(answer["error"])
        if "timed out" in reason.lower():
            raise RayUnavailableError(f"no Ray cluster answered at {address} ({reason})")
        raise RayUnavailableError(f"Ray at {address} refused this client ({reason})")


def _left(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())


def connect(address: str = "local", timeout_s: float | None = None) -> bool:
    """Connect this process to Ray; True when this call started a local instance (to shut down).

    An already initialized Ray (``ray.init`` in the calling program) is used as it is. A HOST:PORT
    address must answer as a Ray cluster within ``timeout_s`` (default `CONNECT_TIMEOUT_S`), else
    `RayUnavailableError`; ``ray://`` (Ray Client) addresses are only checked to accept connections.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    deadline = time.monotonic() + (CONNECT_TIMEOUT_S if timeout_s is None else timeout_s)
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                               "logging_level": logging.ERROR}
    if address == "local" or address.startswith("local:"):
        cpus = address.partition(":")[2]
        if cpus and not (cpus.isdigit() and int(cpus) > 0):
            raise RayUnavailableError(f"bad Ray address {address!r}: local:N needs N >= 1 CPUs")
        options.update(address="local", num_cpus=int(cpus) if cpus else None)
    elif address != "auto":
        _check_reachable(address, deadline)
        if not address.startswith("ray://"):
            _check_cluster(address, deadline)
        options["address"] = address
    else:
        options["address"] = "auto"
    try:
        ray.init(**options)
    except Exception as exc:  # ConnectionError, RuntimeError, ...: all mean "no Ray here"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RayUnavailableError(f"cannot connect to Ray at {address}: {first}") from None
    return options.get("address") == "local"


def _last_line(exc: BaseException) -> str:
    """The last non-empty line of an exception's text (a remote traceback ends with its cause)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _check_restartable(exc: Exception, down_seconds: float) -> None:
    """Raise when a dead worker will not come back: it cannot even be created (phosphene or torch
    missing on a node), or it has been restarting for longer than ``RESTART_TIMEOUT_SECONDS``."""
    if "creation task" in str(exc):
        raise RayUnavailableError(f"Ray workers cannot start (is phosphene installed on every node?): "
                                  f"{_last_line(exc)}") from None
    if down_seconds > RESTART_TIMEOUT_SECONDS:
        raise RayUnavailableError(f"a Ray worker did not come back within {RESTART_TIMEOUT_SECONDS} s: "
                                  f"{_last_line(exc)}") from None


class _Worker:
    """The Ray actor: sets its job up on its first task (and again after a restart), then runs tasks
    one after the other. The job comes as a reference nested in each call, so that Ray restarts the
    actor without needing constructor arguments from the object store."""

    def __init__(self, device: str, threads: int):
        if device == "cpu":
            torch.set_num_threads(max(1, threads))
        self.device = torch.device(device)
        self.job: Job | None = None
        self.context = None

    def run(self, job_ref: list, task: Any) -> Any:
        if self.job is None:
            import ray

            self.job = ray.get(job_ref[0])
            self.context = self.job.setup(self.device)
        return self.job.run(self.context, task)

    def pid(self) -> int:
        return os.getpid()


@dataclass(frozen=True)
class RayOptions:
    """Whether and how to run on Ray (``phosphene mine/render --ray ...``): ``address`` (None: not on
    Ray, in this process), ``cpus`` / ``gpus`` per worker, ``workers`` (None: as many as fit),
    ``shard_batches`` (batches per mining shard). `executor` opens the matching `RayExecutor`."""

    address: str | None = None
    cpus: float = 1.0
    gpus: float = 0.0
    workers: int | None = None
    shard_batches: int = 4

    def executor(self) -> contextlib.AbstractContextManager[RayExecutor | None]:
        """A context holding a `RayExecutor` for ``address``, or None without one."""
        if self.address is None:
            return contextlib.nullcontext(None)
        return RayExecutor(self.address, cpus=self.cpus, gpus=self.gpus, workers=self.workers,
                           shard_batches=self.shard_batches)


class RayExecutor:
    """Run a job's tasks on Ray actors (see the module docstring).

    ``cpus`` / ``gpus``: resources each worker reserves (the worker's torch threads = ``cpus``; with
    ``gpus > 0`` it computes on its GPU). ``workers``: how many actors (default: as many as the
    cluster's resources hold). ``shard_batches``: batches per mining shard. Use as a context manager,
    or call `close` (shuts down a local Ray this executor started).
    """

    def __init__(self, address: str = "local", cpus: float = 1.0, gpus: float = 0.0,
                 workers: int | None = None, shard_batches: int = 4, max_retries: int = 3):
        if cpus <= 0 or gpus < 0 or (workers is not None and workers < 1) or shard_batches < 1:
            raise PhospheneError("--ray-cpus must be > 0, --ray-gpus >= 0, --ray-workers and "
                                 "--shard-batches >= 1")
        self.address, self.cpus, self.gpus, self.workers = address, cpus, gpus, workers
        self.shard_batches, self.max_retries = shard_batches, max_retries
        self.retried = 0
        self._actors: list = []
        self._started = connect(address)

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers, and a local Ray instance this executor started."""
        ray = import_ray()
        self._stop_actors()
        if self._started and ray.is_initialized():
            ray.shutdown()
            self._started = False

    def worker_count(self, tasks: int) -> int:
        """Workers for ``tasks`` tasks: ``workers`` or what the cluster's resources hold."""
        ray = import_ray()
        resources = ray.cluster_resources()
        fits = int(resources.get("CPU", 0) // self.cpus)
        if self.gpus:
            if resources.get("GPU", 0) < self.gpus:
                raise RayUnavailableError(f"--ray-gpus {self.gpus}: the Ray cluster has "
                                          f"{resources.get('GPU', 0):g} GPUs")
            fits = min(fits, int(resources["GPU"] // self.gpus))
        if resources.get("CPU", 0) < self.cpus:
            raise RayUnavailableError(f"--ray-cpus {self.cpus}: the Ray cluster has "
                                      f"{resources.get('CPU', 0):g} CPUs")
        return max(1, min(self.workers or fits, tasks))

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (for diagnostics, and the fault-tolerance tests)."""
        ray = import_ray()
        return ray.get([actor.pid.remote() for actor in self._actors])

    def map(self, job: Job, tasks: Sequence[Any], on_result: Callable[[Any, Any], None]) -> None:
        """Run ``job.run(context, task)`` for every task on the workers; ``on_result(task, result)``
        is called on the driver as each one finishes (in completion order)."""
        if not tasks:
            return
        ray = import_ray()
        device = "cuda" if self.gpus else "cpu"
        actor_class = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=-1,
                                 max_task_retries=0)(_Worker)
        job_ref = ray.put(job)
        self._actors = [actor_class.remote(device, int(self.cpus))
                        for _ in range(self.worker_count(len(tasks)))]
        try:
            self._feed(ray, [job_ref], tasks, on_result)
        finally:
            self._stop_actors()

    def _feed(self, ray, job: list, tasks: Sequence[Any], on_result: Callable[[Any, Any], None]) -> None:
        """Keep every live worker busy; a task whose worker died goes back to the queue, and the
        worker gets tasks again once a probe finds it restarted."""
        queue, attempts, pending, down = deque(range(len(tasks))), Counter(), {}, {}

        def submit(actor) -> None:
            while queue and sum(a is actor for _, a in pending.values()) < IN_FLIGHT_PER_WORKER:
                number = queue.popleft()
                pending[actor.run.remote(job, tasks[number])] = (number, actor)

        def probe(actor) -> None:
            down.setdefault(actor, time.monotonic())
            pending[actor.pid.remote()] = (None, actor)

        for actor in self._actors:
            submit(actor)
        lost = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                ray.exceptions.ObjectLostError)
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            number, actor = pending.pop(ref)
            try:
                result = ray.get(ref)
            except lost as exc:
                _check_restartable(exc, time.monotonic() - down.get(actor, time.monotonic()))
                if number is None:  # still restarting
                    time.sleep(RESTART_POLL_SECONDS)
                    probe(actor)
                    continue
                self._lost(number, attempts, exc)
                queue.appendleft(number)
                if actor not in down:
                    probe(actor)
                continue
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                raise cause if isinstance(cause, PhospheneError) else exc from None
            if number is None:
                down.pop(actor, None)
            else:
                on_result(tasks[number], result)
            for live in [actor] + self._actors:
                if live not in down:
                    submit(live)

    def _lost(self, number: int, attempts: Counter, exc: Exception) -> None:
        """Count a task lost with its worker; give up after ``max_retries`` retries."""
        attempts[number] += 1
        if attempts[number] > self.max_retries:
            raise PhospheneError(f"task {number} failed {attempts[number]} times (workers died); "
                                 f"last: {type(exc).__name__}: {_last_line(exc)}") from None
        self.retried += 1

    def _stop_actors(self) -> None:
        if self._actors:
            ray = import_ray()
            for actor in self._actors:
                ray.kill(actor, no_restart=True)
        self._actors = []
