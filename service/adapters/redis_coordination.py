"""Redis as the deployment's coordination store: budgets, revocations, shared results.

Each budget step is one Lua script (atomic on the server, with the server's clock, so replicas'
clocks never matter); the rules are those of ``service.domain.budget``, kept in step with it
(the unit tests run the same cases against both). An identity's keys share a hash tag, so the
scripts also run on a Redis Cluster. Every key expires when the identity has been idle for a
while, so Redis holds only the budgets in use.

A Redis that does not answer within ``timeout_s``, or answers with an error, raises
``CoordinationUnavailable``: the callers degrade (a local share of the budget, no key cache)
rather than wait or fail; the error is logged by the caller that degrades.

A release that leaves someone queued for the identity is published (inside the release's own
script, so no extra round trip) on one channel, ``<prefix>:budget:released``, as "<origin>
<identity>"; every process that waits listens there (``watch_releases``), so a waiter on one
replica looks at once when a slot is freed on another, instead of on its poll timer: without it
one instance's two workers on Redis served 0.71 of an identity's possible queries/s where the
host file store, which has such wake-ups, served 0.86 (bench/scale_out.py). Best effort like
the host store's datagrams: a lost message only leaves a waiter on its timer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.domain.budget import WAITING, Decision, Limits
from service.ports import CoordinationUnavailable

log = logging.getLogger(__name__)

# Down, slow, full (OOM), read-only after a fail-over, busy with a script: all mean "do not
# count on Redis now" to the callers, who degrade instead of answering 500.
_UNAVAILABLE = (redis.RedisError, OSError)

# KEYS: 1 slots (zset token -> lease expiry ms), 2 sent (zset send -> leaves the window at ms),
#       3 queue (zset token -> priority), 4 qexp (zset token -> expiry ms),
#       5 qcaller (hash token -> caller), 6 qcount (hash caller -> waiters),
#       7 last (hash caller -> last priority), 8 vclock (string)
# ARGV: 1 op, 2 token, 3 caller, 4 concurrency, 5 rate_limit, 6 window_ms, 7 lease_ms,
#       8 ticket_ttl_ms, 9 queue_per_key, 10 sends; for a release also 11 the channel to tell
#       waiters on, 12 the message (published only when someone is queued)
_BUDGET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op, token, caller = ARGV[1], ARGV[2], ARGV[3]
local concurrency, rate_limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local window, lease, ticket_ttl = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local per_key, sends = tonumber(ARGV[9]), tonumber(ARGV[10])

local function vclock() return tonumber(redis.call('GET', KEYS[8]) or '0') end

local function dequeue(ticket)
  local who = redis.call('HGET', KEYS[5], ticket)
  if not who then return end
  redis.call('ZREM', KEYS[3], ticket)
  redis.call('ZREM', KEYS[4], ticket)
  redis.call('HDEL', KEYS[5], ticket)
  if redis.call('HINCRBY', KEYS[6], who, -1) <= 0 then
    redis.call('HDEL', KEYS[6], who)
    if tonumber(redis.call('HGET', KEYS[7], who) or '0') <= vclock() then
      redis.call('HDEL', KEYS[7], who)
    end
  end
end

local function purge()
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  for _, ticket in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)) do
    dequeue(ticket)
  end
end

local function send_id(i) if i == 0 then return token end return token .. '#' .. i end

local function touch()
  local idle = window + lease + ticket_ttl + 60000
  for i = 1, 8 do redis.call('PEXPIRE', KEYS[i], idle) end
end

local function rate_full()
  if redis.call('ZCARD', KEYS[2]) >= rate_limit then
    local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    return math.max(0, tonumber(first[2]) - now)
  end
  return nil
end

if op == 'acquire' then
  purge()
  local wait = rate_full()
  if wait then dequeue(token); return {'rate', 0, wait} end
  local free = concurrency - redis.call('ZCARD', KEYS[1])
  local rank = redis.call('ZRANK', KEYS[3], token)
  local ahead = rank or redis.call('ZCARD', KEYS[3])
  if ahead < free then
    if rank then
      local p = tonumber(redis.call('ZSCORE', KEYS[3], token))
      if p > vclock() then redis.call('SET', KEYS[8], p) end
      dequeue(token)
    end
    redis.call('ZADD', KEYS[1], now + lease, token)
    redis.call('ZADD', KEYS[2], now + lease + window, token)
    touch()
    return {'granted', 0, 0}
  end
  if rank then
    redis.call('ZADD', KEYS[4], now + ticket_ttl, token)
    return {'waiting', ahead, math.max(0, free)}
  end
  if tonumber(redis.call('HGET', KEYS[6], caller) or '0') >= per_key then
    return {'key_queue', 0, 0}
  end
  local p = math.max(vclock(), tonumber(redis.call('HGET', KEYS[7], caller) or '0')) + 1
  redis.call('HSET', KEYS[7], caller, p)
  redis.call('ZADD', KEYS[3], p, token)
  redis.call('ZADD', KEYS[4], now + ticket_ttl, token)
  redis.call('HSET', KEYS[5], token, caller)
  redis.call('HINCRBY', KEYS[6], caller, 1)
  touch()
  return {'waiting', redis.call('ZRANK', KEYS[3], token), math.max(0, free)}
elseif op == 'release' then
  redis.call('ZREM', KEYS[1], token)
  for i = 0, sends - 1 do
    redis.call('ZADD', KEYS[2], 'XX', now + window, send_id(i))
  end
  if ARGV[11] and redis.call('ZCARD', KEYS[3]) > 0 then
    redis.call('PUBLISH', ARGV[11], ARGV[12])
  end
  return {'ok', 0, 0}
elseif op == 'charge' then
  purge()
  local wait = rate_full()
  if wait then return {'rate', 0, wait} end
  local held = tonumber(redis.call('ZSCORE', KEYS[1], token) or (now + lease))
  redis.call('ZADD', KEYS[2], held + window, send_id(sends))
  touch()
  return {'granted', 0, 0}
elseif op == 'renew' then
  redis.call('ZADD', KEYS[1], now + lease, token)
  for i = 0, sends - 1 do
    redis.call('ZADD', KEYS[2], now + lease + window, send_id(i))
  end
  touch()
  return {'ok', 0, 0}
elseif op == 'cancel' then
  dequeue(token)
  return {'ok', 0, 0}
elseif op == 'in_flight' then
  purge()
  return {'ok', redis.call('ZCARD', KEYS[1]), 0}
end
return redis.error_reply('unknown op ' .. op)
"""

_PARTS = ("slots", "sent", "queue", "qexp", "qcaller", "qcount", "last", "vclock")


class RedisCoordination:
    """``BudgetStore``, ``RevocationFeed`` and ``SharedResults`` on one Redis."""

    name = "redis"
    shared = True

    # A listener that lost Redis subscribes again after this long (doubling up to the second).
    RESUBSCRIBE_S = (0.1, 5.0)

    def __init__(self, url: str, *, prefix: str = "amlcp", timeout_s: float = 0.25) -> None:
        self.prefix = prefix
        self.channel = f"{prefix}:budget:released"
        self._origin = (0, "")  # (pid, token): this handle in this process, renewed after fork
        self._listener: tuple[int, threading.Event] | None = None  # (pid, stop)
        self._listener_lock = threading.Lock()
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),  # a slow Redis degrades at once instead of retrying
            max_connections=64,
        )
        self._budget = self._redis.register_script(_BUDGET)
        self._renew_lead = self._redis.register_script(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then "
            "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
        )
        self._unlead = self._redis.register_script(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
            "return 0"
        )

    # -- BudgetStore -----------------------------------------------------------------------
    def _run(
        self,
        op: str,
        identity: str,
        token: str,
        caller: str,
        lim: Limits,
        sends: int,
        *tell: str,
    ) -> Any:
        keys = [f"{self.prefix}:budget:{{{identity}}}:{part}" for part in _PARTS]
        args: list[str | int] = [
            op,
            token,
            caller,
            lim.concurrency,
            lim.rate_limit,
            int(lim.window_s * 1000),
            int(lim.lease_s * 1000),
            int(lim.ticket_ttl_s * 1000),
            lim.queue_per_key,
            sends,
            *tell,
        ]
        try:
            outcome, ahead, third = self._budget(keys=keys, args=args)
        except _UNAVAILABLE as exc:
            raise CoordinationUnavailable(f"{type(exc).__name__}: {exc}") from None
        return outcome.decode(), int(ahead), int(third)

    def acquire(self, identity: str, token: str, caller: str, limits: Limits) -> Decision:
        outcome, ahead, third = self._run("acquire", identity, token, caller, limits, 1)
        if outcome == WAITING:  # the script's third value: the free slots (else the wait in ms)
            return Decision(outcome, ahead=ahead, free=third)
        return Decision(outcome, ahead=ahead, retry_after_s=third / 1000)

    def release(self, identity: str, token: str, sends: int, limits: Limits) -> None:
        message = f"{self._origin_token()} {identity}"
        self._run("release", identity, token, "", limits, sends, self.channel, message)

    def charge(self, identity: str, token: str, sends: int, limits: Limits) -> Decision:
        outcome, _, wait_ms = self._run("charge", identity, token, "", limits, sends)
        return Decision(outcome, retry_after_s=wait_ms / 1000)

    def renew(self, identity: str, token: str, sends: int, limits: Limits) -> None:
        self._run("renew", identity, token, "", limits, sends)

    def cancel(self, identity: str, token: str) -> None:
        self._run("cancel", identity, token, "", Limits(1, 1, 1.0), 0)

    def in_flight(self, identity: str) -> int:
        _, count, _ = self._run("in_flight", identity, "", "", Limits(1, 1, 1.0), 0)
        return int(count)

    def ping(self) -> None:
        self._call(self._redis.ping)

    def watch_releases(self, on_release: Callable[[str], None]) -> None:
        """Call ``on_release(identity)`` for each release published by another process (or
        handle) while someone was queued; one listener per process (a forked child starts its
        own). Its own releases are not echoed: the caller counts those itself."""
        with self._listener_lock:
            if self._listener is not None and self._listener[0] == os.getpid():
                return
            stop = threading.Event()
            self._listener = (os.getpid(), stop)
        origin = self._origin_token()
        threading.Thread(
            target=self._listen,
            args=(on_release, origin, stop),
            name="slot-wakeups",
            daemon=True,
        ).start()

    def _origin_token(self) -> str:
        pid, token = self._origin
        if pid != os.getpid():
            self._origin = pid, token = os.getpid(), secrets.token_hex(6)
        return token

    def _listen(
        self, on_release: Callable[[str], None], origin: str, stop: threading.Event
    ) -> None:
        pause, longest = self.RESUBSCRIBE_S
        while not stop.is_set():
            pubsub: Any = self._redis.pubsub(  # type: ignore[no-untyped-call]
                ignore_subscribe_messages=True
            )
            try:
                pubsub.subscribe(self.channel)
                pause = self.RESUBSCRIBE_S[0]
                while not stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    sender, _, identity = bytes(message["data"]).decode().partition(" ")
                    if sender != origin and identity:
                        on_release(identity)
            except _UNAVAILABLE as exc:  # waiters poll meanwhile; subscribe again later
                log.info("release wake-ups paused (%s): waiters poll", type(exc).__name__)
                stop.wait(pause)
                pause = min(2 * pause, longest)
            except Exception:  # the listener must outlive any one message
                log.warning("a release wake-up could not be handled", exc_info=True)
                stop.wait(pause)
            finally:
                with contextlib.suppress(*_UNAVAILABLE):
                    pubsub.close()

    # -- RevocationFeed --------------------------------------------------------------------
    def stamp(self) -> int:
        return int(self._call(self._redis.get, f"{self.prefix}:api-keys:revoked") or 0)

    def bump(self) -> None:
        self._call(self._redis.incr, f"{self.prefix}:api-keys:revoked")

    # -- SharedResults ---------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        value = self._call(self._redis.get, f"{self.prefix}:results:{key}")
        return bytes(value) if value is not None else None

    def put(self, key: str, value: bytes, ttl_s: float) -> None:
        self._call(
            self._redis.set, f"{self.prefix}:results:{key}", value, px=max(1, int(ttl_s * 1000))
        )

    def lead(self, key: str, token: str, ttl_s: float) -> str | None:
        # SET NX GET (Redis 7): sets when absent and answers the previous value either way.
        previous = self._call(
            self._redis.set,
            f"{self.prefix}:lead:{key}",
            token,
            nx=True,
            get=True,
            px=max(1, int(ttl_s * 1000)),
        )
        return previous.decode() if previous is not None else None

    def leader(self, key: str) -> str | None:
        value = self._call(self._redis.get, f"{self.prefix}:lead:{key}")
        return value.decode() if value is not None else None

    def follow(self, key: str, leader: str) -> None:
        name = f"{self.prefix}:followers:{key}:{leader}"
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.incr(name)
            pipe.pexpire(name, 600_000)
            self._call(pipe.execute)

    def followers(self, key: str, token: str) -> int:
        return int(self._call(self._redis.get, f"{self.prefix}:followers:{key}:{token}") or 0)

    def renew_lead(self, key: str, token: str, ttl_s: float) -> None:
        self._call(
            self._renew_lead,
            keys=[f"{self.prefix}:lead:{key}"],
            args=[token, max(1, int(ttl_s * 1000))],
        )

    def unlead(self, key: str, token: str) -> None:
        self._call(self._unlead, keys=[f"{self.prefix}:lead:{key}"], args=[token])

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _UNAVAILABLE as exc:
            raise CoordinationUnavailable(f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        with self._listener_lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener[1].set()  # its listener ends within its 1 s wait for a message
        self._redis.close()
