"""Shared runtime pieces every other vidray package builds on.

Start here: `config` (settings from file, environment and overrides), `errors` (the error types
that become 4xx answers and one-line CLI messages), `optional` (heavy dependencies and the extra
that provides each), `ray_runtime` (the one place that starts or joins Ray), `log`.
"""

from cluster.errors import InputError, NotFoundError, UnavailableError, VidrayError

__all__ = ["InputError", "NotFoundError", "UnavailableError", "VidrayError"]
