"""The one exception for refused prediction input; the routes turn it into an HTTP answer."""

from __future__ import annotations


class InputError(ValueError):
    """Refused input; the message names the field and says what was expected (HTTP 422)."""

    status_code = 422


class InputTooLarge(InputError):
    """Input over a size limit (HTTP 413); the message gives the size and the limit."""

    status_code = 413


class UnsupportedMediaType(InputError):
    """A body of a media type the route does not read (HTTP 415); the message says which does."""

    status_code = 415
