"""pmhub: Precision Medicine Hub."""

__version__ = "0.1.0"
