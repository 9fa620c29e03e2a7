"""Test harness: the `omsyn` CLI as the base office, and nodes opened through the bindings.

Environment (set by scripts/test-mobile.sh):
  OMSYN_BIN       the omsyn binary (the base office runs it)
  OMSYN_BINDINGS  the directory holding the generated omsyn_mobile.py and libomsyn_mobile.so
"""

import asyncio
import datetime
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time

# The nodes read and show times in OMSYN_TZ (Europe/Oslo by default). The tests' own "today" and
# local times (and the browser's) must be that zone's too, or a test would depend on the hour it
# runs at: between midnight in Oslo and midnight UTC the two dates differ.
os.environ.setdefault("OMSYN_TZ", "Europe/Oslo")
os.environ["TZ"] = os.environ["OMSYN_TZ"]
time.tzset()

sys.path.insert(0, os.environ["OMSYN_BINDINGS"])
import omsyn_mobile as om  # noqa: E402

OMSYN = os.environ["OMSYN_BIN"]
ZONE = "Sone 1"


def today() -> str:
    return datetime.date.today().isoformat()


def at_today(hhmm: str) -> str:
    """An RFC 3339 time today in the local offset, as the CLI takes it."""
    now = datetime.datetime.now().astimezone()
    h, m = hhmm.split(":")
    return now.replace(hour=int(h), minute=int(m), second=0, microsecond=0).isoformat()


class Base:
    """A base office on the real omsyn binary: creates the organisation, registers the patient
    and plans the visit, approves enrolments, and serves sync with `omsyn run`."""

    def __init__(self, root: str):
        self.dir = os.path.join(root, "base")
        self.cli("init", "--role", "base", "--name", "Base Sone 1", "--staff-id", "B1", "--zone", ZONE)
        self.cli("org", "create", "--name", "Testkommune hjemmesykepleie")
        self.daemon = None

    def cli(self, *args: str) -> dict:
        out = subprocess.run(
            [OMSYN, "--json", "--data", self.dir, *args], capture_output=True, text=True
        )
        if out.returncode != 0:
            raise RuntimeError(f"omsyn {' '.join(args)} failed: {out.stderr}")
        return json.loads(out.stdout) if out.stdout.strip() else {}

    def approve(self, request: str) -> str:
        return self.cli("enroll", "approve", request)["certificate"]

    def serve(self) -> str:
        """Starts `omsyn run` on loopback; returns its ticket."""
        self.daemon = subprocess.Popen(
            [OMSYN, "--json", "--data", self.dir, "run", "--listen", "127.0.0.1:0", "--no-mdns"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        return json.loads(self.daemon.stdout.readline())["ticket"]

    def stop(self):
        if self.daemon:
            self.daemon.kill()
            self.daemon.wait()
            self.daemon.stdout.close()


class Events(om.NodeListener):
    """A listener that keeps every event and lets a test wait for one that matches, on the
    event loop the test runs in (the bindings call `on_event` on their own thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.seen = []
        self.lock = threading.RLock()
        self.changed = asyncio.Condition()

    def on_event(self, event):
        with self.lock:
            self.seen.append(event)
        self.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._notify()))

    async def _notify(self):
        async with self.changed:
            self.changed.notify_all()

    def matching(self, predicate):
        with self.lock:
            return [e for e in self.seen if predicate(e)]

    async def wait_for(self, predicate, what: str, timeout: float = 30.0):
        async def until():
            async with self.changed:
                while not self.matching(predicate):
                    await self.changed.wait()
        try:
            await asyncio.wait_for(until(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no {what} within {timeout}s; events: {self.seen}") from None
        return self.matching(predicate)[0]


def new_key() -> bytes:
    """What the app keeps in the Android Keystore / iOS Keychain."""
    return secrets.token_bytes(32)


async def enrolled(base: Base, root: str, name: str, setup) -> tuple:
    """Creates a node through the bindings and enrols it at the base (request and certificate
    travel as text, as through a QR code). Returns (node, data dir, key)."""
    data = os.path.join(root, name)
    key = new_key()
    node = await om.OmsynNode.create(data, key, setup)
    await node.install_certificate(base.approve(node.enrollment_request()))
    return node, data, key


def temp_root() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="omsyn-mobile-")
