"""A real SMTP server for e-mail tests: aiosmtpd on an ephemeral 127.0.0.1 port.

aiosmtpd's :class:`~aiosmtpd.controller.Controller` runs the server on its own event
loop in a thread, so the code under test talks SMTP over a real socket from any loop.
:class:`Mailbox` is the handler: it keeps the accepted messages and answers as a test
tells it (refuse some recipients, fail some ``DATA`` commands), so delivery failures
are induced on the wire rather than by mocking the SMTP client.

Shared by the channel tests and the end-to-end delivery tests; each test module wraps
:func:`running_smtp` in a fixture of its own.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from typing import Any

from aiosmtpd.controller import Controller

from alerting.channels.config import SmtpServer
from tests.helpers import free_port

SENDER = "riskwatch@370829.example.cn"


class Mailbox:
    """aiosmtpd handler: refuses ``nobody@`` permanently and ``busy@`` temporarily, and
    answers ``DATA`` with the replies queued by :meth:`fail_data` before accepting.

    ``data_replies`` maps a Message-ID to every answer its ``DATA`` got (the accepted
    one included), so a test sees each attempt the server saw.  The handler runs on the
    controller's thread, hence the lock.
    """

    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.data_replies: dict[str, list[str]] = {}
        self._failures: dict[str, list[str]] = {}
        self._failures_each = 0
        self._failure_each = ""
        self._lock = threading.Lock()

    def fail_data(self, times: int, reply: str = "451 4.3.0 try again later") -> None:
        """Answer the first ``times`` ``DATA`` commands *of every message* with ``reply``.

        Counted per Message-ID, so every notification fails the same number of times
        whatever order concurrent sends arrive in.
        """
        with self._lock:
            self._failures_each = times
            self._failure_each = reply
            self._failures.clear()

    def accept_all(self) -> None:
        """From now on accept every message (a fixed receiver)."""
        self.fail_data(0)

    def accepted(self) -> Counter[str]:
        """How many copies of each Message-ID were accepted."""
        with self._lock:
            return Counter(_message_id(e.original_content) for e in self.envelopes)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user"
        if address.startswith("busy@"):
            return "450 4.2.1 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message_id = _message_id(envelope.original_content)
        with self._lock:
            planned = self._failures.setdefault(message_id,
                                                [self._failure_each] * self._failures_each)
            reply = planned.pop(0) if planned else "250 Message accepted"
            self.data_replies.setdefault(message_id, []).append(reply)
            if reply.startswith("250"):
                self.envelopes.append(envelope)
        return reply


def _message_id(raw: bytes) -> str:
    return str(BytesHeaderParser(policy=policy.default).parsebytes(raw).get("Message-ID", ""))


def parse(envelope: Any) -> EmailMessage:
    """The received message as a mail client reads it (headers decoded, body too)."""
    parsed = message_from_bytes(envelope.original_content, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@contextmanager
def running_smtp(mailbox: Mailbox, **controller: Any) -> Iterator[SmtpServer]:
    """Serve ``mailbox`` on a free loopback port while the block runs; yields the
    :class:`SmtpServer` configuration that reaches it.  ``controller`` goes to aiosmtpd's
    Controller (``authenticator``, ``auth_required``, ...)."""
    server = Controller(mailbox, hostname="127.0.0.1", port=free_port(), **controller)
    server.start()
    try:
        yield SmtpServer(host="127.0.0.1", port=server.port, sender=SENDER)
    finally:
        server.stop()
