"""The error every loader raises for a file it cannot read as routing data."""

from __future__ import annotations


class DatasetFormatError(ValueError):
    """A file that is not in the format it was read as (or in no supported format).

    The message names the file (and the line where there is one) and what was expected."""


class UnknownFormatError(DatasetFormatError):
    """A file in none of the supported formats (a folder load skips these)."""
