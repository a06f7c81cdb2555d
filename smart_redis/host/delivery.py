"""One run's messages to the receivers: each receiver on its own, new messages first, each
receiver within a time budget, so that one that is down or blackholed delays nobody else.

A receiver that does not take a message keeps it for the next run (pending, the newest
PENDING_KEPT); a newer message about the same check replaces it, since it says the check's
level now and which level it had before. Delivery is at least once: a message that was in
flight when the budget ran out is tried again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .alerts import PENDING_KEPT, Message, from_record, to_record

# Seconds one receiver may take in one run, all its messages together (each request gets what
# is left, at most its own timeout). The alert unit's TimeoutStartSec leaves room for this, the
# checks and the heartbeat.
RECEIVER_BUDGET = 25.0
# What a receiver's thread may overrun its budget by (a name lookup ignores socket timeouts)
# before the run stops waiting for it.
GRACE = 3.0

Send = Callable[[Message, float, float], tuple[bool, str]]


def queue(new: list[Message], missed: list[dict]) -> list[Message]:
    """A receiver's messages of this run: the new ones, then those it missed before, less each
    missed one that a new message about the same check replaces."""
    renewed = {m.check for m in new if m.check}
    kept = [m for m in map(from_record, missed) if m is not None and not (m.check and m.check in renewed)]
    return [*new, *kept]


def deliver(
    send: dict[str, Send], queues: dict[str, list[Message]], now: float, budget: float = RECEIVER_BUDGET
) -> tuple[list[dict], dict[str, list[dict]]]:
    """Every receiver's queue, the receivers side by side. Returns the log (one entry per message
    and receiver, receivers in the order of `send`) and what each receiver still has to take."""
    # One entry per message tried, (message, ok, reason), appended in one step by the receiver's
    # thread: whatever the moment the run stops waiting, a message is either in it or not tried.
    results: dict[str, list[tuple[Message, bool, str]]] = {name: [] for name in queues}

    def work(name: str) -> None:
        end = time.monotonic() + budget
        for index, message in enumerate(queues[name]):
            left = end - time.monotonic()
            if left < 1:
                reason = f"not tried: the receiver had used its {budget:g} s"
                results[name].extend((rest, False, reason) for rest in queues[name][index:])
                return
            try:
                ok, reason = send[name](message, now, left)
            except Exception as exc:  # noqa: BLE001 - one receiver's bug must not cost the others their message
                ok, reason = False, f"the receiver failed: {type(exc).__name__}"
            results[name].append((message, ok, reason))

    threads = {name: threading.Thread(target=work, args=(name,), daemon=True) for name in queues if queues[name]}
    for thread in threads.values():
        thread.start()
    deadline = time.monotonic() + budget + GRACE
    for thread in threads.values():
        thread.join(max(0.0, deadline - time.monotonic()))
    log: list[dict] = []
    pending: dict[str, list[dict]] = {}
    for name in send:
        if name not in queues:
            continue
        worker = threads.get(name)
        alive = worker is not None and worker.is_alive()  # first: a thread that ends now has written all
        done = list(results[name])
        if alive:  # still in flight, or never reached
            done += [(m, False, f"no answer within {budget + GRACE:g} s") for m in queues[name][len(done) :]]
        for message, ok, reason in done:
            _log(log, message, name, ok, reason)
        # The queue is newest first: what is kept is the newest PENDING_KEPT.
        kept = [message for message, ok, _ in done if not ok][:PENDING_KEPT]
        if kept:
            pending[name] = [to_record(m) for m in kept]
    return log, pending


def _log(log: list[dict], message: Message, receiver: str, ok: bool, reason: str) -> None:
    log.append(
        {
            "kind": message.kind,
            "check": message.check,
            "receiver": receiver,
            "result": "OK" if ok else "FAILED",
            "reason": reason,
        }
    )
