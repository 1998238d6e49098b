"""The ``phosphene`` click group and its exit codes.

Exit codes: 0 success, 2 bad input (unknown model/layer, unit out of range, unreadable weights or
image, bad option or number, unavailable device, an output that cannot be written or a full disk),
1 an unexpected failure (a bug). Each verb lives in its own module of `phosphene.cli` and registers
itself on `main` (``from .app import main``).
"""

from __future__ import annotations

import errno
import sys

import click

from ..errors import PhospheneError

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


# Failures of the user's environment, not bugs: a path that cannot be written or read.
USER_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR,
               errno.EEXIST, errno.ENOENT, errno.EDQUOT, errno.ENAMETOOLONG, errno.EADDRINUSE}


class PhospheneGroup(click.Group):
    """Turns `PhospheneError` (and an unwritable or full disk) into one line and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PhospheneError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except OSError as exc:
            if exc.errno not in USER_ERRNOS:
                raise
            where = f": {exc.filename}" if exc.filename else ""
            click.echo(f"error: {exc.strerror or exc}{where}", err=True)
            sys.exit(EXIT_BAD_INPUT)


@click.group(cls=PhospheneGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="phosphene")
def main() -> None:
    """phosphene: what vision-model features respond to, where, and what suppresses them."""
