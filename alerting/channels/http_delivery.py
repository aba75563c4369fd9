"""One HTTP request, one verdict: the delivery rules the HTTP channels share.

Webhook, DingTalk, WeCom and SMS gateway all speak HTTP, and they must agree on what a
failure means, because the dispatcher retries on :attr:`DeliveryError.retryable` alone:

- a transport error (refused, reset, timeout) is temporary: retry;
- 2xx is delivered (robots then look at their JSON ``errcode``);
- 408 Request Timeout, 429 Too Many Requests and every 5xx are temporary: retry, after
  the receiver's ``Retry-After`` when it gives one (seconds or an HTTP date);
- any other status (3xx not followed, 4xx) says the request itself is wrong (bad URL,
  bad token, malformed body): retrying the same bytes cannot help.

Errors name the channel and the endpoint's host only.  Robot URLs carry their
credential in the query (DingTalk ``access_token``, WeCom ``key``) and requests carry
signatures and bearer tokens, so no URL, header or response body goes into a message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from http import HTTPStatus

import httpx

from alerting.notification import DeliveryError

RETRYABLE_STATUS: frozenset[int] = frozenset({408, 429})
"""4xx statuses that are temporary; every 5xx is too."""

USER_AGENT = "riskwatch-notifier/1"


def endpoint_label(url: str) -> str:
    """``host[:port]`` of ``url``: enough to tell endpoints apart in an error, nothing
    that could hold a credential (user info, path, query).

    >>> endpoint_label("https://oapi.dingtalk.com/robot/send?access_token=abc")
    'oapi.dingtalk.com'
    >>> endpoint_label("http://user:pw@127.0.0.1:8080/hook/xyz")
    '127.0.0.1:8080'
    """
    parsed = httpx.URL(url)
    return parsed.host + (f":{parsed.port}" if parsed.port else "")


def check_url(url: str, what: str) -> httpx.URL:
    """The parsed ``url``; ``ValueError`` (without the URL) unless it is http(s) with a
    host, so a typo fails at start-up rather than on the first alert."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise ValueError(f"{what}: url is not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"{what}: url must be http:// or https:// with a host")
    return parsed


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or HTTP date);
    ``None`` when absent or unreadable, 0 for a date already past.

    >>> parse_retry_after("120", 0.0)
    120.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0)
    10.0
    >>> parse_retry_after("soon", 0.0) is None
    True
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # RFC 9110 dates are GMT; an obsolete form may lack it
        return None
    return max(0.0, moment.timestamp() - now)


def classify_status(status: int, headers: Mapping[str, str], *, what: str,
                    now: float) -> DeliveryError | None:
    """``None`` for 2xx, else the :class:`DeliveryError` the status means (see module
    docstring), with ``retry_after`` from ``Retry-After`` on retryable statuses."""
    if 200 <= status < 300:
        return None
    retryable = status in RETRYABLE_STATUS or 500 <= status < 600
    retry_after = parse_retry_after(headers.get("retry-after"), now) if retryable else None
    phrase = _reason_phrase(status)
    return DeliveryError(f"{what}: HTTP {status}{phrase}", retryable=retryable,
                         retry_after=retry_after)


async def send_http(
    client: httpx.AsyncClient | None, method: str, url: str, *, content: bytes,
    headers: Mapping[str, str], what: str, timeout_s: float,
    params: Mapping[str, str] | None = None, clock: Callable[[], float] = time.time,
) -> httpx.Response:
    """Send one request and return the 2xx response; raise :class:`DeliveryError`
    otherwise.

    ``client`` is the service's shared, pooled client; without one a client is opened
    for this request alone (tests, one-off tools), so a channel never owns a connection
    pool that somebody would have to close.
    """
    if client is None:
        async with httpx.AsyncClient() as own:
            return await _send(own, method, url, content=content, headers=headers,
                               what=what, timeout_s=timeout_s, params=params, clock=clock)
    return await _send(client, method, url, content=content, headers=headers, what=what,
                       timeout_s=timeout_s, params=params, clock=clock)


async def _send(
    client: httpx.AsyncClient, method: str, url: str, *, content: bytes,
    headers: Mapping[str, str], what: str, timeout_s: float,
    params: Mapping[str, str] | None, clock: Callable[[], float],
) -> httpx.Response:
    all_headers = httpx.Headers({"User-Agent": USER_AGENT})
    all_headers.update(headers)  # case-insensitive: a configured header replaces ours
    # Merge into the URL's own query: httpx's ``params=`` would *replace* it, dropping
    # the robot's access_token.
    target = httpx.URL(url).copy_merge_params(params) if params else httpx.URL(url)
    try:
        response = await client.request(method, target, content=content, headers=all_headers,
                                        timeout=timeout_s)
    except httpx.UnsupportedProtocol:
        raise DeliveryError(f"{what}: unsupported URL scheme", retryable=False) from None
    except httpx.TransportError as exc:
        # Transport messages name the peer address, never the URL or headers.
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise DeliveryError(f"{what}: {detail}", retryable=True) from exc
    error = classify_status(response.status_code, response.headers, what=what, now=clock())
    if error is not None:
        raise error
    return response


def _reason_phrase(status: int) -> str:
    try:
        return f" {HTTPStatus(status).phrase}"
    except ValueError:
        return ""


def robot_errcode(response: httpx.Response, *, what: str,
                  temporary: Mapping[int, float | None]) -> None:
    """Check the JSON ``{"errcode": 0, "errmsg": "ok"}`` answer of a chat robot.

    Robots answer HTTP 200 also when they refuse a message; ``temporary`` maps the
    error codes worth retrying (rate limit, system busy) to a retry hint in seconds.
    An unreadable answer is retried: the message may not have been posted, and a
    duplicate in a group chat is better than a lost warning.
    """
    try:
        data = response.json()
        errcode = int(data["errcode"])
    except (ValueError, TypeError, KeyError):
        raise DeliveryError(f"{what}: unreadable robot response (HTTP "
                            f"{response.status_code})", retryable=True) from None
    if errcode == 0:
        return
    errmsg = str(data.get("errmsg", ""))[:200]
    retryable = errcode in temporary
    raise DeliveryError(f"{what}: errcode {errcode} {errmsg}".rstrip(), retryable=retryable,
                        retry_after=temporary.get(errcode))
