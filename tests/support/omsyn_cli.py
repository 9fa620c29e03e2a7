"""Driving the real omsyn binary from Python tests (the FHIR and dashboard suites).

OMSYN_BIN names the binary."""

import datetime
import json
import os
import subprocess

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
