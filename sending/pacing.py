"""What may go out next, decided between recipients, before each RCPT TO: whether
the campaign still sends (pause, cancel), the relay's shared rate, the recipient
domain's limit, and whether the relay still answers well.

Everything here runs once per message on the send path, so the common answer costs
a clock read and a counter: the database is read at most once per
``CONTROL_SECONDS`` and Redis once per share of tokens, not per message.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from campaigns.models import Campaign
from sending import smtp
from sending.models import Delivery, Relay, SendBatch
from sending.ratelimit import DomainLimits, TokenBucket

# Pause and cancel reach every worker within about this (the promise is 5 seconds).
CONTROL_SECONDS = 1.0
# Sleep at most this long at once while waiting for tokens, to notice a pause meanwhile.
LONGEST_NAP = 0.25
# This many 4xx in a row from one relay and it cools down; its work moves on.
TEMPFAILS_BEFORE_COOLDOWN = 10


@dataclass
class Control:
    """Whether a batch may go on: the campaign's status read at most once per
    CONTROL_SECONDS, and the batch's lease and its connections' slots renewed on the
    way (a slow relay rate must not let either run out while the batch is sending)."""

    batch_id: int
    campaign_id: int
    stopped: str = ""  # the campaign status that stopped the batch
    next_check: float = 0.0
    next_lease: float = field(default_factory=lambda: time.monotonic() + _lease_seconds() / 4)

    def go_on(self) -> bool:
        if self.stopped:
            return False
        now = time.monotonic()
        if now < self.next_check:
            return True
        self.next_check = now + CONTROL_SECONDS
        smtp.pool.keep_slots()
        status = Campaign.objects.filter(id=self.campaign_id).values_list("status", flat=True)
        current = status.first() or Campaign.Status.CANCELLED
        if current != Campaign.Status.SENDING:
            self.stopped = current
            return False
        if now >= self.next_lease:
            self.next_lease = now + _lease_seconds() / 4
            SendBatch.objects.filter(id=self.batch_id).update(
                lease_until=timezone.now() + timedelta(seconds=_lease_seconds())
            )
        return True


def _lease_seconds() -> float:
    return settings.SEND_BATCH_LEASE_SECONDS


# Consecutive 4xx per relay in this process; a streak survives chunk boundaries.
_tempfails: dict[int, int] = {}


@dataclass
class Feed:
    """One relay's share of a chunk, handed to SMTP one recipient at a time.

    ``waiting`` keeps what was not handed out (a pause, a relay in trouble), ``held``
    the recipients over their domain's limit with the seconds until they are due.
    """

    control: Control
    relay: Relay
    bucket: TokenBucket | None
    limits: DomainLimits | None
    item: Callable[[Delivery], smtp.Item]
    waiting: deque[Delivery]
    held: list[tuple[Delivery, float]] = field(default_factory=list)
    again: deque[smtp.Item] = field(default_factory=deque)
    credit: int = 0
    relay_in_trouble: bool = False
    last_tempfail: str = ""

    def use(self, relay: Relay, bucket: TokenBucket | None) -> None:
        self.relay, self.bucket, self.credit, self.relay_in_trouble = relay, bucket, 0, False

    def put_back(self, items: list[smtp.Item]) -> None:
        """Items a lost connection did not finish: sent first on the next one (their
        tokens and domain share were already taken)."""
        self.again.extendleft(reversed(items))

    def items(self, connection: smtp.Connection | None = None) -> Iterator[smtp.Item]:
        """The recipients one at a time, until none is left, the campaign stops, the
        relay is in trouble or ``connection`` lost its connection slot."""
        while self.again or self.waiting:
            if self.relay_in_trouble or not self.control.go_on():
                return
            if connection is not None and not connection.usable:
                return
            if self.again:
                yield self.again.popleft()
                continue
            delivery = self.waiting[0]
            delay = self.limits.hold(delivery.subscriber.domain) if self.limits else 0.0
            if delay:
                self.held.append((self.waiting.popleft(), delay))
                continue
            if not self._token():
                return
            yield self.item(self.waiting.popleft())

    def unsent(self) -> list[Delivery]:
        return [item[0] for item in self.again] + list(self.waiting)

    @property
    def pending(self) -> bool:
        return bool(self.again or self.waiting)

    def _token(self) -> bool:
        if self.bucket is None:
            return True
        while not self.credit:
            # Half a second's worth at a time: one round trip per chunk at high rates,
            # and at low ones no token is held far ahead of its message.
            want = min(len(self.waiting), max(1, math.ceil(self.bucket.rate / 2)))
            grant = self.bucket.take(want)
            self.credit = grant.granted
            if not self.credit:
                time.sleep(min(max(grant.wait_seconds, 0.005), LONGEST_NAP))
                if not self.control.go_on():
                    return False
        self.credit -= 1
        return True

    def answered(self, outcome: smtp.Outcome) -> None:
        """Counts the relay's 4xx in a row; a 2xx or 5xx (it judged the message) ends it."""
        if outcome.code is None:
            return
        relay_id = self.relay.id
        if outcome.status == smtp.DEFERRED:
            _tempfails[relay_id] = streak = _tempfails.get(relay_id, 0) + 1
            self.last_tempfail = f"{outcome.code} {outcome.response}"
            if streak >= TEMPFAILS_BEFORE_COOLDOWN:
                _tempfails[relay_id] = 0
                self.relay_in_trouble = True
        else:
            _tempfails.pop(relay_id, None)
