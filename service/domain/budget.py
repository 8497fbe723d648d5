"""One identity's log query budget as data: leased slots, a sliding send window, a fair queue.

Azure allows each identity ``concurrency`` queries at once and ``rate_limit`` per ``window_s``.
Every process of a deployment shares one :class:`BudgetState` per identity, kept in a store
(this process's memory, a file shared by the host's gunicorn workers, or Redis); each change is
one atomic step of the functions below. The Redis store runs the same rules as a Lua script
(``service/adapters/redis_coordination.py``): keep the two in step; the unit tests run the
same cases against every store.

- **Slots are leased**: a slot not renewed within ``lease_s`` is free again, so a crashed
  process cannot keep one. Holders renew while their query runs.
- **Sends leave the window after the answer**: a send occupies the window from the moment its
  slot is granted until ``window_s`` after its answer arrived (while in flight: until the lease
  expiry plus the window). Azure counts the moment a query *arrives*, which lies between the two,
  so however long the network takes, Azure never sees more than ``rate_limit`` in any window.
- **The queue is fair between callers** (API keys): a waiter's priority is
  ``max(virtual clock, its caller's last priority) + 1``, the virtual clock being the priority
  of the last waiter served; serving in priority order interleaves the callers round-robin, so
  one noisy key cannot starve the others wherever their requests land. Waiters that stop
  polling for ``ticket_ttl_s`` leave the queue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

GRANTED = "granted"
WAITING = "waiting"
RATE = "rate"  # the rate window is full: retry after ``retry_after_s``
KEY_QUEUE = "key_queue"  # this caller already has ``queue_per_key`` waiters


@dataclass(frozen=True)
class Limits:
    concurrency: int
    rate_limit: int
    window_s: float
    lease_s: float = 15.0
    ticket_ttl_s: float = 2.0
    queue_per_key: int = 20


@dataclass(frozen=True)
class Decision:
    outcome: str  # GRANTED | WAITING | RATE | KEY_QUEUE
    ahead: int = 0  # waiters served before this one (WAITING)
    free: int = 0  # slots free right now, about to go to waiters ahead (WAITING)
    retry_after_s: float = 0.0  # RATE


def send_ids(token: str, sends: int) -> list[str]:
    """The rate-window entries of one slot: its first send, then one per retry."""
    return [token if i == 0 else f"{token}#{i}" for i in range(sends)]


@dataclass
class BudgetState:
    slots: dict[str, float] = field(default_factory=dict)  # token -> lease expiry
    sent: dict[str, float] = field(default_factory=dict)  # send id -> leaves the window at
    queue: dict[str, list[Any]] = field(default_factory=dict)  # token -> [priority, caller, exp]
    last: dict[str, int] = field(default_factory=dict)  # caller -> priority of its last waiter
    vclock: int = 0  # priority of the last waiter served

    def to_json(self) -> str:
        return json.dumps(
            [self.slots, self.sent, self.queue, self.last, self.vclock], separators=(",", ":")
        )

    @classmethod
    def from_json(cls, text: str | None) -> BudgetState:
        if not text:
            return cls()
        slots, sent, queue, last, vclock = json.loads(text)
        return cls(slots, sent, queue, last, vclock)

    # -- the steps (each is atomic in its store) -------------------------------------------
    def acquire(self, token: str, caller: str, now: float, lim: Limits) -> Decision:
        """Take a slot now, join (or stay in) the queue, or refuse."""
        self._purge(now)
        if len(self.sent) >= lim.rate_limit:
            self._dequeue(token)
            return Decision(RATE, retry_after_s=max(0.0, min(self.sent.values()) - now))
        free = lim.concurrency - len(self.slots)
        ticket = self.queue.get(token)
        ahead = self._ahead(token) if ticket is not None else len(self.queue)
        if ahead < free:
            if ticket is not None:
                self.vclock = max(self.vclock, int(ticket[0]))
                self._dequeue(token)
            self.slots[token] = now + lim.lease_s
            self.sent[token] = now + lim.lease_s + lim.window_s
            return Decision(GRANTED)
        if ticket is not None:
            ticket[2] = now + lim.ticket_ttl_s
            return Decision(WAITING, ahead=ahead, free=max(0, free))
        if sum(1 for t in self.queue.values() if t[1] == caller) >= lim.queue_per_key:
            return Decision(KEY_QUEUE)
        priority = max(self.vclock, self.last.get(caller, 0)) + 1
        self.last[caller] = priority
        self.queue[token] = [priority, caller, now + lim.ticket_ttl_s]
        return Decision(WAITING, ahead=self._ahead(token), free=max(0, free))

    def release(self, token: str, sends: int, now: float, lim: Limits) -> None:
        """The answer arrived: free the slot; its sends leave the window ``window_s`` from now."""
        self.slots.pop(token, None)
        for send in send_ids(token, sends):
            if send in self.sent:
                self.sent[send] = now + lim.window_s

    def charge(self, token: str, sends: int, now: float, lim: Limits) -> Decision:
        """One more send (a retry) on a held slot, if the window has room."""
        self._purge(now)
        if len(self.sent) >= lim.rate_limit:
            return Decision(RATE, retry_after_s=max(0.0, min(self.sent.values()) - now))
        self.sent[send_ids(token, sends + 1)[-1]] = (
            self.slots.get(token, now + lim.lease_s) + lim.window_s
        )
        return Decision(GRANTED)

    def renew(self, token: str, sends: int, now: float, lim: Limits) -> None:
        """The query still runs: extend its lease (re-taking the slot if it lapsed)."""
        self.slots[token] = now + lim.lease_s
        for send in send_ids(token, sends):
            self.sent[send] = now + lim.lease_s + lim.window_s

    def cancel(self, token: str) -> None:
        """A waiter gave up."""
        self._dequeue(token)

    # -- internals -------------------------------------------------------------------------
    def _ahead(self, token: str) -> int:
        mine = (self.queue[token][0], token)
        return sum(1 for t, q in self.queue.items() if (q[0], t) < mine)

    def _dequeue(self, token: str) -> None:
        ticket = self.queue.pop(token, None)
        if ticket is None:
            return
        caller = ticket[1]
        waiting = any(q[1] == caller for q in self.queue.values())
        if not waiting and self.last.get(caller, 0) <= self.vclock:
            self.last.pop(caller, None)

    def _purge(self, now: float) -> None:
        for token in [t for t, exp in self.slots.items() if exp <= now]:
            del self.slots[token]
        for send in [s for s, exp in self.sent.items() if exp <= now]:
            del self.sent[send]
        for token in [t for t, q in self.queue.items() if q[2] <= now]:
            self._dequeue(token)

    @property
    def idle(self) -> bool:
        return not (self.slots or self.sent or self.queue)
