"""A private ``dbus-daemon`` for tests: its own config, its own socket, nothing shared with the host.

>>> with PrivateBus() as bus:               # doctest: +SKIP
...     os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow receive_type="*"/>
  </policy>
  <limit name="max_replies_per_connection">50000</limit>
</busconfig>
"""


class PrivateBus:
    """Start ``dbus-daemon`` with a private config; ``address`` is its unix socket address."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="engage-dbus-"))
        self.socket = self.dir / "bus"
        self.address = f"unix:path={self.socket}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "PrivateBus":
        exe = shutil.which("dbus-daemon")
        if exe is None:
            raise RuntimeError("dbus-daemon is not installed (Debian package dbus-daemon)")
        conf = self.dir / "bus.conf"
        conf.write_text(CONFIG.format(socket=self.socket))
        self.proc = subprocess.Popen([exe, f"--config-file={conf}", "--nofork", "--nopidfile"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"dbus-daemon exited: {self.proc.stderr.read().decode(errors='replace')}")
            if time.monotonic() > deadline:
                raise RuntimeError("dbus-daemon did not create its socket within 10 s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "PrivateBus":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
