"""Development and demo channel: appends each message as one JSON line to a file."""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from channels.base import OutgoingMessage, SendResult


class ConsoleAdapter:
    """Writes messages to a JSONL file (fsync'd), so the demo and tests can read what went out."""

    name = "console"
    authoritative_reconcile = True  # the file is the provider: absence proves no send

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """This process's threads and other processes (flock on a side file) in turn, so an
        erasure's rewrite never loses a line appended meanwhile."""
        with self._lock, open(f"{self.path}.lock", "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(guard, fcntl.LOCK_UN)

    def send(self, message: OutgoingMessage) -> SendResult:
        """Appends the message as one JSON line."""
        line = json.dumps(
            {
                "id": message.idempotency_key,
                "channel": message.channel,
                "to": message.address,
                "locale": message.locale,
                "parts": message.parts,
            },
            ensure_ascii=False,
        )
        with self._locked(), self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return SendResult.sent(f"console:{message.idempotency_key}")

    def reconcile(self, idempotency_key: str) -> SendResult | None:
        """The recorded send with this key, if the file has it."""
        if not self.path.exists():
            return None
        needle = json.dumps(idempotency_key)
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                if f'"id": {needle}' in line:
                    return SendResult.sent(f"console:{idempotency_key}")
        return None

    def forget(self, addresses: frozenset[str], keys: frozenset[str]) -> int:
        """Erasure: every line sent to one of `addresses` (or with one of the send-record
        `keys`) is replaced by a stub without recipient, key or text; returns how many."""
        if not self.path.exists():
            return 0
        with self._locked():
            lines = self.path.read_text(encoding="utf-8").splitlines()
            kept, scrubbed = [], 0
            for line in lines:
                record = json.loads(line) if line.strip() else {}
                if record.get("to") in addresses or record.get("id") in keys or any(
                        a and a in str(record.get("to")) for a in addresses):
                    record, scrubbed = {"channel": record.get("channel"), "erased": True}, (
                        scrubbed + 1)
                    line = json.dumps(record)
                kept.append(line)
            if scrubbed:
                temp = self.path.with_suffix(".erasing")
                temp.write_text("".join(f"{x}\n" for x in kept), encoding="utf-8")
                os.replace(temp, self.path)
        return scrubbed
