"""``--ray`` and its companion options, shared by ``phosphene mine`` and ``phosphene render``: the
command receives them as one `RayOptions` (keyword ``ray``)."""

from __future__ import annotations

import functools

import click

from ..distributed.executor import RayOptions
from ..errors import install_hint
from .options import NON_NEGATIVE_FLOAT, POSITIVE


def ray_options(func):
    """``--ray [ADDRESS|auto|local:N]``, ``--ray-cpus``, ``--ray-gpus``, ``--ray-workers``, passed to
    the command as ``ray=RayOptions(...)``."""

    @click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None,
                  metavar="[ADDRESS|auto|local:N]",
                  help="Run on Ray workers: HOST:PORT or ray://HOST:PORT of a cluster, auto (the "
                       "cluster of this machine), local:N (start Ray here with N CPUs); bare --ray: "
                       "local with every core. Needs " + install_hint("ray") + ".")
    @click.option("--ray-cpus", type=NON_NEGATIVE_FLOAT, default=1.0, show_default=True,
                  help="CPUs per Ray worker (its torch threads).")
    @click.option("--ray-gpus", type=NON_NEGATIVE_FLOAT, default=0.0, show_default=True,
                  help="GPUs per Ray worker (> 0: workers compute on their GPU; 0.5: two per GPU).")
    @click.option("--ray-workers", type=POSITIVE, default=None,
                  help="Number of Ray workers (default: as many as the cluster's resources hold).")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        kwargs["ray"] = RayOptions(kwargs.pop("ray_address"), kwargs.pop("ray_cpus"), kwargs.pop("ray_gpus"),
                                   kwargs.pop("ray_workers"))
        return func(*args, **kwargs)

    return wrapper
