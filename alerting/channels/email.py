"""E-mail through the configured SMTP relay: plain text, UTF-8, one message per
notification to all of the channel's addresses.

The subject and body are Chinese, so the message is built with the standard library's
modern e-mail API (RFC 2047 encoded subject, base64 UTF-8 body) and never as a
hand-made string.  ``Message-ID`` is ``<notification key@riskwatch>``: a mail archive
or a ticket system that files mail by Message-ID keeps one copy of a message that was
sent again after a crash.

SMTP replies say themselves whether to retry: 4xx is temporary (greylisting, mailbox
busy), 5xx permanent (unknown recipient, relaying denied, bad credentials); a refused
or lost connection or a timeout is temporary; a server that does not offer what the
configuration asks for (STARTTLS, AUTH) is permanent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from alerting.channels.config import EmailChannel, SmtpServer, channel_name
from alerting.notification import DeliveryError, Notification


class EmailSender:
    """Sends notifications of one :class:`~alerting.channels.config.EmailChannel`
    through ``smtp``.

    ``password`` is the value of the server's ``password_env`` variable (the factory
    reads it); AUTH is used only when both it and ``smtp.username`` are given.
    """

    __slots__ = ("_clock", "_config", "_password", "_smtp", "_what")

    def __init__(self, config: EmailChannel, smtp: SmtpServer, *, password: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if smtp.password_env is not None and not password:
            raise ValueError(f"email {channel_name(config)!r}: password_env "
                             f"{smtp.password_env} is set but no password was given")
        self._config = config
        self._smtp = smtp
        self._password = password
        self._clock = clock
        self._what = f"email {channel_name(config)!r} ({smtp.host}:{smtp.port})"

    @property
    def kind(self) -> str:
        return "email"

    def message(self, notification: Notification) -> EmailMessage:
        """The e-mail of ``notification``, as it will be sent."""
        message = EmailMessage()
        message["Subject"] = notification.subject
        message["From"] = self._smtp.sender
        message["To"] = ", ".join(self._config.to)
        message["Date"] = formatdate(self._clock(), usegmt=True)
        message["Message-ID"] = f"<{notification.key}@riskwatch>"
        # RFC 3834: tells vacation responders and list servers not to answer a robot.
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(notification.body, charset="utf-8", cte="base64")
        return message

    async def send(self, notification: Notification) -> None:
        """Hand the message to the relay once; :class:`DeliveryError` says whether to
        retry."""
        smtp = self._smtp
        login = smtp.username is not None and self._password is not None
        try:
            refused, _ = await aiosmtplib.send(
                self.message(notification), sender=smtp.sender,
                recipients=list(self._config.to), hostname=smtp.host, port=smtp.port,
                username=smtp.username if login else None,
                password=self._password if login else None,
                timeout=smtp.timeout_s, use_tls=smtp.security == "tls",
                start_tls=smtp.security == "starttls",
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = {r.recipient: (r.code, r.message) for r in exc.recipients}
            raise _refused(self._what, codes) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(f"{self._what}: SMTP {exc.code} {exc.message}",
                                retryable=_temporary(exc.code)) from exc
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected,
                aiosmtplib.SMTPTimeoutError, OSError) as exc:
            # Refused or lost connections, timeouts, TLS handshakes: all temporary.
            raise DeliveryError(f"{self._what}: {type(exc).__name__}: {exc}",
                                retryable=True) from exc
        except aiosmtplib.SMTPException as exc:
            # What is left is a capability mismatch (STARTTLS or AUTH configured but not
            # offered, no common AUTH mechanism): only a configuration change helps.
            raise DeliveryError(f"{self._what}: {exc.message}", retryable=False) from exc
        if refused:  # some recipients accepted, some not: say which were refused
            raise _refused(self._what, {address: (response.code, response.message)
                                        for address, response in refused.items()})

    def __repr__(self) -> str:
        return f"EmailSender({self._what}, to={len(self._config.to)} addresses)"


def _temporary(code: int) -> bool:
    """SMTP reply classes: 4xx transient, 5xx permanent; anything else (no code, a
    malformed reply) is treated as a transport problem."""
    return not 500 <= code < 600


def _refused(what: str, codes: Mapping[str, tuple[int, str]]) -> DeliveryError:
    """One error for refused recipients, retryable if any refusal was temporary (a
    retry re-sends to all; the unchanged Message-ID marks the copies)."""
    detail = "; ".join(f"{address}: {code} {message}"
                       for address, (code, message) in sorted(codes.items()))
    retryable = any(400 <= code < 500 for code, _ in codes.values())
    return DeliveryError(f"{what}: recipients refused: {detail}", retryable=retryable)
