"""A first-come-first-served pool of aiomysql connections to one server.

aiomysql's own pool lets a newcomer take a freed connection before the waiters it wakes (under
sustained load some waited past their timeout while others were served), and on every checkout it
scanned each idle connection under a Condition and on every return started a task of its own. Here
a FIFO semaphore hands out the turns (at most `size` connections out, hence at most `size` open),
and a turn takes the most recently returned idle connection, checked as it is taken: one the server
has closed, or idle past `recycle` seconds (the server's wait_timeout is set above that), is closed
and the next one tried; with none left a new one is opened by the caller.
"""
from __future__ import annotations

import asyncio
import collections

import aiomysql


class Pool:
    __slots__ = ("params", "size", "recycle", "tls", "turns", "idle", "closing", "clock")

    def __init__(self, params: dict, size: int, recycle: float, tls: bool) -> None:
        self.params = params  # aiomysql.connect's keywords; a renewed secret updates user and password
        self.size = size
        self.recycle = recycle
        self.tls = tls  # every connection must be TLS
        self.turns = asyncio.Semaphore(size)
        self.idle: collections.deque[aiomysql.Connection] = collections.deque()
        self.closing = False
        self.clock = asyncio.get_running_loop().time  # aiomysql's `last_usage` clock

    def take_idle(self) -> aiomysql.Connection | None:
        """Within a turn: the freshest usable idle connection, if any."""
        idle = self.idle
        while idle:
            connection = idle.pop()
            reader = connection._reader
            # eof_received: MySQL 8 sends an error packet before closing a timed-out connection
            if not (reader.at_eof() or reader.exception() or reader.eof_received
                    or self.clock() - connection.last_usage > self.recycle):
                return connection
            connection.close()
        return None

    def release(self, connection: aiomysql.Connection | None) -> None:
        """The turn's end. Its connection goes back unless it is closed, the pool closes, or it is
        still inside a transaction (whose state nobody knows)."""
        if connection is not None and not connection.closed:
            if self.closing or connection.get_transaction_status():
                connection.close()
            else:
                self.idle.append(connection)
        self.turns.release()

    def clear(self) -> None:
        """Closes the idle connections (they point at a server that failed or was demoted)."""
        while self.idle:
            self.idle.pop().close()

    async def close(self) -> None:
        """Closes the idle connections now and each one out as it comes back; returns when all are back."""
        self.closing = True
        self.clear()
        for _ in range(self.size):
            await self.turns.acquire()
