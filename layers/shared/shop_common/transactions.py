"""Multi-document transactions that end within the invocation.

pymongo's ``with_transaction`` runs a transaction again as long as it meets transient errors (a
write conflict on a contended document, an election) for up to 120 s, whatever time the function
has. Here an attempt starts only while the invocation has more than MONGODB_RESERVE_SECONDS left,
and the transaction runs under pymongo's client-side operation timeout, the invocation's time
less that reserve, which bounds its operations, its commit and pymongo's own retries: a
transaction that cannot finish in time raises OutOfTime, its record fails alone and returns to
its queue, and the invocation still answers for the others.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TypeVar

import pymongo
from pymongo import MongoClient
from pymongo.client_session import ClientSession
from pymongo.errors import PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from shop_common.runtime import MONGODB_RESERVE_SECONDS, OutOfTime, ensure_time_for_attempt, seconds_left

ResultT = TypeVar("ResultT")


def run_transaction(client: MongoClient, callback: Callable[[ClientSession], ResultT]) -> ResultT:
    """What ``callback`` returns, run in a snapshot transaction committed with majority, and run
    again after a transient error only while the invocation has time for another attempt."""
    attempts = 0
    last_error: PyMongoError | None = None

    def attempt(session: ClientSession) -> ResultT:
        nonlocal attempts, last_error
        ensure_time_for_attempt(attempts, last_error)
        attempts += 1
        try:
            return callback(session)
        except PyMongoError as error:
            last_error = error
            raise

    left = seconds_left()
    try:
        with _deadline(left), client.start_session() as session:
            return session.with_transaction(
                attempt, read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority")
            )
    except PyMongoError as error:
        if left is not None and error.timeout:
            raise OutOfTime(f"Transaction out of the invocation's time after {attempts} attempts: {error}") from error
        raise


def _deadline(left: float | None) -> AbstractContextManager[None]:
    """pymongo's client-side operation timeout for ``left`` seconds of invocation less the reserve;
    none outside an invocation."""
    if left is None:
        return nullcontext()
    # With nothing left the first attempt raises OutOfTime; pymongo reads a timeout of 0 as none.
    return pymongo.timeout(max(left - MONGODB_RESERVE_SECONDS, 1e-9))
