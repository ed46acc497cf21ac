"""One racing process: 8 threads try 4 messages each against a cap of 3; prints how many passed.

Usage: python -m tests.throttling.racing <backend> <location> <start unix time> <name>
"""

from __future__ import annotations

import sys
import threading
import time

from tests.throttling.stores import open_store, ticket
from throttling.ledger import Outcome

T0 = 1_800_000_000_000


def main(backend: str, where: str, start_at: float, name: str) -> int:
    store, close = open_store(backend, where)
    admitted: list[str] = []
    ready = threading.Barrier(8)

    def race(worker: int) -> None:
        ready.wait()
        time.sleep(max(0.0, start_at - time.time()))
        for attempt in range(4):
            token = f"{name}-{worker}-{attempt}"
            result = store.admit(ticket(token, T0 + attempt, ("race", 3, 86_400_000)))
            if result.outcome is Outcome.ADMITTED:
                admitted.append(token)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    close()
    print(len(admitted))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]))
