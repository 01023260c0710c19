"""Which API failures are the link's (retried until answered) and which are the caller's (raised)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx2 as httpx
import pytest
from lightkube.core.exceptions import ApiError

from hostrefresh.kube.errors import is_transient, until_answered
from hostrefresh.kube.link import ApiLink


def _api_error(code: int, name: str | None = None) -> ApiError:
    details = {"name": name, "kind": "hostrefreshes"} if name else {}
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "details": details}
    request = httpx.Request("PATCH", "https://127.0.0.1/apis/hostrefresh.io/v1alpha1/hostrefreshes/x/status")
    return ApiError(response=httpx.Response(code, json=body, request=request))


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (httpx.ConnectError("refused"), True),
        (httpx.RemoteProtocolError("server disconnected"), True),
        (httpx.ReadTimeout("slow"), True),
        (ConnectionResetError(), True),
        (_api_error(503), True),
        (_api_error(429), True),
        (_api_error(404), True),  # the resource is not served (yet): a restarted API server loading CRDs
        (_api_error(404, "x"), False),  # the object is gone
        (_api_error(409, "x"), False),
        (_api_error(422, "x"), False),
        (_api_error(403), False),
        (ValueError("a bug"), False),
    ],
)
def test_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_a_request_is_made_again_until_the_api_server_answers() -> None:
    answers: list[BaseException | str] = [httpx.ConnectError("down"), _api_error(503), _api_error(404), "ok"]
    retried: list[float] = []

    async def request() -> str:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    result = asyncio.run(
        until_answered(request, "test", first_delay=0.001, max_delay=0.002, on_retry=lambda e, d: retried.append(d))
    )
    assert result == "ok" and answers == []
    assert retried == [0.001, 0.002, 0.002]  # doubling, capped


def test_an_answer_that_is_the_callers_problem_is_raised_at_once() -> None:
    calls = 0

    async def request() -> None:
        nonlocal calls
        calls += 1
        raise _api_error(404, "gone")

    with pytest.raises(ApiError):
        asyncio.run(until_answered(request, "test", first_delay=0.001))
    assert calls == 1


def test_the_link_knows_when_the_api_server_came_back() -> None:
    link = ApiLink()
    now = datetime.now(UTC)
    assert link.trusted_since(now) is None  # never down: nothing to discount
    link.answered()
    assert link.down_since is None and link.trusted_since(now) is None
    link.unanswered()
    assert link.trusted_since(now) == now  # down: every silence now is ours
    link.unanswered()
    assert link.outages == 1
    link.answered()
    back = link.trusted_since(now)
    assert back is not None and link.back_at == back and link.down_since is None
