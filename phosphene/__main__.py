"""``python -m phosphene``: the same command line as the ``phosphene`` script."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="phosphene")
