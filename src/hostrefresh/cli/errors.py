"""Exit codes of ``kubectl hostrefresh`` and the error that carries one, with what to do about it."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    """Process exit codes (documented in ``kubectl hostrefresh --help``)."""

    OK = 0  #: done: the command worked, the refresh or rollout succeeded
    FAILED = 1  #: a refresh failed or rolled back, a rollout failed or halted, or the API server refused
    USAGE = 2  #: bad flags or invalid input (nothing was changed)
    NOT_DONE = 3  #: still in progress (when the --timeout ran out, or at once without one)
    NOT_FOUND = 4  #: no such plan, refresh or node
    NO_CLUSTER = 5  #: no kubeconfig, unknown context, or the API server cannot be reached
    NO_CRDS = 6  #: the cluster does not serve the hostrefresh.io API (CRDs not installed)


EXIT_CODES_HELP = "exit codes: " + ", ".join(
    f"{code.value} {text}"
    for code, text in (
        (Exit.OK, "success"),
        (Exit.FAILED, "failed/halted/refused"),
        (Exit.USAGE, "usage"),
        (Exit.NOT_DONE, "still in progress or timed out"),
        (Exit.NOT_FOUND, "not found"),
        (Exit.NO_CLUSTER, "no cluster"),
        (Exit.NO_CRDS, "CRDs missing"),
    )
)


class CliError(Exception):
    """An error for the user: what went wrong, what to do, and the exit code."""

    def __init__(self, message: str, hint: str = "", code: Exit = Exit.FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message
