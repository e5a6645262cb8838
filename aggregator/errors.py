"""The one exception hierarchy. Every class says when it is raised.

Callers catch ``AggregatorError`` at the edge (the CLI prints its message and exits 1;
the pipeline stores it as the entry's or feed's ``last_error``; the web answers
``http_status``). Messages are written for a person: they name the thing that was wrong (a
key and a file, a URL, an engine).

Every error carries what its callers need: ``http_status``, the answer a web client gets
(a class attribute), and ``retry_after``, the seconds after which trying again may work
(``None``: no advice).
"""

from __future__ import annotations


class AggregatorError(Exception):
    """Root of every error this program raises on purpose."""

    http_status: int = 500

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigError(AggregatorError):
    """config.toml is missing, not TOML, or has an unknown, misspelt, mistyped or missing key."""

    http_status = 500


class StorageError(AggregatorError):
    """The database cannot be opened, upgraded or queried."""

    http_status = 503


class ClaimLostError(StorageError):
    """A process wrote the result of work whose claim it no longer holds (its lease ran out
    and another process took the work over, or it released the claim when asked to stop):
    the result is discarded, so the work has one effect however many times it ran."""


class NotFoundError(AggregatorError):
    """A draft, entry or feed asked for by id or name does not exist."""

    http_status = 404


class InvalidTransitionError(AggregatorError):
    """A review action does not apply to the draft's current status (approve a rejected one)."""

    http_status = 409


class UnknownReviewerError(AggregatorError):
    """A command line review action names a reviewer (``--as``, ``$AGGREGATOR_REVIEWER``)
    who is not in ``[review] reviewers``, or a name that is too long: nothing was done."""

    http_status = 403


class AccountError(AggregatorError):
    """A ``users`` command cannot be done as asked: the name is taken or unknown, empty or
    too long, the role is not editor or admin, or the new password is too short."""

    http_status = 422


class ConflictError(AggregatorError):
    """A review action was based on a version of a draft that someone else has since changed
    (the version the editor saw is not the current one): nothing was written."""

    http_status = 409


class InvalidEditError(AggregatorError):
    """An editor's change cannot be saved as given: an empty title or block, a block edit
    that holds block markup, a block number the draft does not have."""

    http_status = 422


class RequestError(AggregatorError):
    """A web request cannot be read as sent, whatever it asks for: not the form or JSON
    object expected, a field or query parameter missing, unknown or of the wrong type, a
    version that is not a version number. The message names the field; nothing was done."""

    http_status = 422


class BodyTooLargeError(RequestError):
    """A request body is larger than ``[review] max_body_bytes`` (the login form: 16 KiB):
    refused before the rest of it is read."""

    http_status = 413


class NotAuthenticatedError(AggregatorError):
    """A review page, a desk image or an API call comes with no valid session cookie and no
    valid API token (or with a token that is not one)."""

    http_status = 401


class ForbiddenError(AggregatorError):
    """A request is refused whoever sent it: a read-only API token tries to write, a write
    with the session cookie lacks its CSRF token, a form is posted from another site, a
    desk image's address is one the SSRF guard does not fetch."""

    http_status = 403


class TooManyAttemptsError(AggregatorError):
    """Logins for one account from one client failed too often: refused, whatever the
    password, until ``retry_after`` seconds have passed."""

    http_status = 429


class NotAnImageError(AggregatorError):
    """A desk image's address answered with something that is not a PNG, JPEG, GIF, WebP
    or AVIF image (by its Content-Type and its first bytes): it is not shown."""

    http_status = 415


class FetchError(AggregatorError):
    """An HTTP fetch failed: network error, timeout, bad status, body too large.

    ``retry_after`` is set (in seconds) when the server said when to come back;
    ``gone`` when the server answered 410 and the feed should be paused.
    """

    http_status = 502

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        gone: bool = False,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status
        self.gone = gone


class BlockedURLError(FetchError):
    """A URL taken from feed content (an article link, a redirect, a discovered feed link)
    resolves to a loopback, private or otherwise internal address, and private networks
    are not allowed for its feed (``allow_private_networks`` of the feed, else of
    ``[fetch]``): the SSRF guard."""


class InvalidURLError(FetchError):
    """A URL to fetch (an article link, a redirect's Location, a discovered feed link)
    cannot be fetched as written: no http(s) scheme, no host, a malformed address such
    as ``0177.0.0.1``, a host name that is not valid IDNA, a port out of range."""


class UnexpectedError(AggregatorError):
    """Work on one entry or one feed failed in a way this program did not foresee (a bug,
    a library's exception): stored as that entry's or feed's error, with the exception's
    type, so that the other entries and feeds proceed."""


class ParseError(AggregatorError):
    """Feed bytes are not a feed (an HTML page, an empty body) or are too broken to keep."""


class NotAFeedError(ParseError):
    """A feed URL answered with an HTML page: feed discovery looks in it for the real feed."""


class OpmlError(AggregatorError):
    """An OPML file given to ``feeds import`` cannot be read, or holds no feed."""


class ExtractError(AggregatorError):
    """No article text could be extracted from a page or a feed entry."""

    http_status = 422


class TranslateError(AggregatorError):
    """A translation engine failed: timeout, HTTP error, quota, empty or ``None`` output,
    or output whose markup or block count does not match the source."""

    http_status = 502


class BudgetExhaustedError(TranslateError):
    """An engine's daily character budget (``[translation.<engine>] daily_characters``) is
    spent, and so is every fallback's: translation pauses until the next UTC day."""
