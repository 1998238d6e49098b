"""Shared by the examples: PHOSPHENE_EXAMPLE_TINY=1 makes every example a few-second smoke run."""

import os

TINY = os.environ.get("PHOSPHENE_EXAMPLE_TINY") == "1"


def pick(full, tiny):
    """``full`` normally, ``tiny`` under PHOSPHENE_EXAMPLE_TINY=1 (what the tests use)."""
    return tiny if TINY else full
