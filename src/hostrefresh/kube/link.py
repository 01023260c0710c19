"""What one process has seen of its link to the API server: is it answering, and since when.

Why: a controller that cannot reach the API server cannot see heartbeats either. Silence it
measured while the link was down is its own, not the agents'; so the operator counts an agent's
silence from the end of its last outage at the earliest, and the agents' renewals made after the
outage are seen before any verdict (``lifecycle._silent_for``).
"""

from __future__ import annotations

from datetime import UTC, datetime


class ApiLink:
    """Fed by every request's result (``answered`` / ``unanswered``); read by decisions (``trusted_since``).

    It imports no API client (the operator's pure layers hold one): callers classify a failure with
    ``hostrefresh.kube.errors.is_transient`` first.
    """

    def __init__(self) -> None:
        self.down_since: datetime | None = None
        self.back_at: datetime | None = None
        self.outages = 0

    def answered(self) -> None:
        """A request got an answer (any answer: a 409 is the API server speaking)."""
        if self.down_since is not None:
            self.down_since = None
            self.back_at = datetime.now(UTC)

    def unanswered(self) -> None:
        """A request got no answer, or one that means the server is not serving (5xx, 429)."""
        if self.down_since is None:
            self.down_since = datetime.now(UTC)
            self.outages += 1

    def trusted_since(self, now: datetime) -> datetime | None:
        """From when on silence can be blamed on others: now while the link is down, the end of the
        last outage after one, None when there was none."""
        if self.down_since is not None:
            return now
        return self.back_at
