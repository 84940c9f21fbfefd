"""gexsrv: a capture server for options-market gamma-exposure (GEX) data."""

__version__ = "0.1.0"
