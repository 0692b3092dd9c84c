"""vidray: videos from URLs into answers, summaries, code and training data, on Ray."""

__version__ = "0.1.0"
__all__ = ["__version__"]
