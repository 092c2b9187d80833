"""User-facing errors: anything a user can fix ends in one readable line, never a stack trace."""


class CurateError(Exception):
    """A mistake in the input, the config or the command line; printed as one line, exit code 2."""

    exit_code = 2


class InternalError(CurateError):
    """A broken invariant (counts that do not reconcile, a file that failed its check); exit code 1."""

    exit_code = 1
