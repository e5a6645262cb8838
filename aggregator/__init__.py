"""aggregator: English newsletters in, reviewed French feeds out."""

__version__ = "0.1.0"
