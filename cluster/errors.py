"""Error types shared by every layer.

Why a small hierarchy: the CLI turns any `VidrayError` into one line on stderr and a non-zero exit,
and the HTTP API maps each subclass to a status code. Everything else is a bug and surfaces as one.
"""

from __future__ import annotations


class VidrayError(Exception):
    """Base class: a failure a user can act on. The message names the input and the fix."""

    http_status = 500
    exit_code = 1


class InputError(VidrayError):
    """The input itself is bad: unsupported, corrupt, too large, refused by policy."""

    http_status = 400
    exit_code = 2


class PolicyError(InputError):
    """The input is refused by a safety rule (SSRF guard, size or duration cap)."""

    http_status = 403


class TooLargeError(InputError):
    """The input is over a configured size or duration limit."""

    http_status = 413


class NotFoundError(VidrayError):
    """A named thing (video, job, file, dataset version) does not exist."""

    http_status = 404
    exit_code = 3


class UnavailableError(VidrayError):
    """A needed component is missing here (an extra, a key, a GPU) or a remote service failed."""

    http_status = 503
    exit_code = 4
