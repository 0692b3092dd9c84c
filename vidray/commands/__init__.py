"""CLI command groups; each module defines `register(subparsers)` and sets `func` on its parsers.

Helpers shared by commands live in `_common`.
"""
