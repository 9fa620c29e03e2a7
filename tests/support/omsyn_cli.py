"""Driving the real omsyn binary from Python tests (the FHIR and dashboard suites).

OMSYN_BIN names the binary."""

import datetime
import json
import os
import subprocess
import urllib.error
import urllib.request
import time

# The nodes read and show times in OMSYN_TZ (Europe/Oslo by default). The tests' own "today" and
# local times (and the browser's) must be that zone's too, or a test would depend on the hour it
# runs at: between midnight in Oslo and midnight UTC the two dates differ.
os.environ.setdefault("OMSYN_TZ", "Europe/Oslo")
os.environ["TZ"] = os.environ["OMSYN_TZ"]
time.tzset()

OMSYN = os.environ["OMSYN_BIN"]
ZONE = "Sone 1"


def at(hhmm: str) -> str:
    """An RFC 3339 time today in the local offset, as the CLI takes it."""
    now = datetime.datetime.now().astimezone()
    h, m = hhmm.split(":")
    return now.replace(hour=int(h), minute=int(m), second=0, microsecond=0).isoformat()


class Node:
    """A node's data directory, initialised with `init_args`, run through the CLI with --json."""

    def __init__(self, root, name, *init_args):
        self.dir = os.path.join(root, name)
        self.cli("init", *init_args)

    def cli(self, *args):
        out = subprocess.run([OMSYN, "--json", "--data", self.dir, *args], capture_output=True, text=True)
        if out.returncode != 0:
            raise AssertionError(f"omsyn {' '.join(args)}: {out.stderr}")
        return json.loads(out.stdout) if out.stdout.strip() else {}

    def enroll_at(self, base, *approve_args):
        """Enrols this node at `base` (which holds the organisation key), by text."""
        request = self.cli("enroll", "request")["request"]
        self.cli("enroll", "install", base.cli("enroll", "approve", request, *approve_args)["certificate"])


def admin_base(root, org="Testkommune"):
    """The zone's base office (staff B1), holding the organisation key `org`."""
    base = Node(root, "base", "--role", "base", "--name", "Base Sone 1", "--staff-id", "B1", "--zone", ZONE)
    base.cli("org", "create", "--name", org)
    return base


class Serving:
    """`omsyn run --http` on a node's data directory (loopback, no mDNS), and calls to its API
    with the run's session token. Commands for the node meanwhile are answered by this daemon."""

    def __init__(self, node, peers=()):
        peer_args = [arg for ticket in peers for arg in ("--peer", ticket)]
        self.process = subprocess.Popen(
            [OMSYN, "--json", "--data", node.dir, "run", "--listen", "127.0.0.1:0", "--no-mdns",
             "--http", "127.0.0.1:0", *peer_args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.first = json.loads(self.process.stdout.readline())
        self.ticket = self.first["ticket"]
        self.base_url, self.token = self.first["dashboard"].split("/?token=")

    def call(self, method, path, body=None):
        """(status, JSON answer) of one API call; `body` is JSON-encoded unless it is bytes."""
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def stop(self):
        self.process.kill()
        self.process.wait()
        self.process.stdout.close()
