"""phosphene's version (``phosphene.__version__``), in a module of its own so that any module can
record it without importing the package root."""

__version__ = "0.2.0"
