"""atomabench: benchmark and qualify LLM inference nodes.

Importing the package is cheap: torch, transformers and SQLAlchemy load only when a room needs them.
The Python API lives in :mod:`atomabench.api`.
"""

__version__ = "0.1.0"
