"""A second local user for the security tests: a throwaway Unix user (created with useradd
when running as root, as CI does; the tests skip with one line otherwise) and a way to run
code as that user in a subprocess that drops to it with os.setuid.

tests/conftest.py loads it as a plugin: any test may ask for the ``other_user`` fixture, and
imports ``attacker(user, code, *args)`` and the rest from here.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import textwrap
from typing import Any

import pytest


@pytest.fixture(scope="module")
def other_user() -> Any:
    """(uid, gid) of a throwaway Unix user."""
    if os.geteuid() != 0:
        pytest.skip("creating a second Unix user needs root (CI runs the tests as root)")
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        pytest.skip("useradd/userdel are not installed: cannot create a second Unix user")
    name = f"devdx{os.getpid() % 100000}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    name], check=True, capture_output=True)
    entry = pwd.getpwnam(name)
    yield entry.pw_uid, entry.pw_gid
    subprocess.run(["userdel", name], capture_output=True)


# The attacker's code runs in a fresh interpreter started by root that first drops to the
# other user: everything it needs is imported before (the interpreter lives under /root).
DROP = textwrap.dedent("""
    import json, os, socket, stat, struct, sys, time
    UID, GID = int(sys.argv[1]), int(sys.argv[2])
    def drop():
        os.setgroups([])
        os.setgid(GID)
        os.setuid(UID)
""")


def attacker(user: tuple[int, int], code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", DROP + textwrap.dedent(code),
                             str(user[0]), str(user[1]), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", (line, proc.stderr.read() if proc.stderr else "")


def finish(proc: subprocess.Popen[str], stop: bool = True) -> str:
    """Stop the attacker (or wait for it); what it printed after 'ready'.

    Read through the same buffered stream as ``wait_ready``: lines it already buffered
    count too.
    """
    if stop:
        proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    assert proc.stdout is not None
    return proc.stdout.read()
