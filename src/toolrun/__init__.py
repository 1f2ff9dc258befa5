"""toolrun: one registry of tools, one way to run them, every interface LLMs use to reach them."""

__version__ = "0.1.0"
