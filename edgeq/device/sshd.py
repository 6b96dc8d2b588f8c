"""A real OpenSSH server on 127.0.0.1 for the emulated Arm Linux device (qemu-aarch64): started for a
run with keys of its own, in a temporary folder, and stopped after it, as QEMU is for the MPS2 boards.
edgeq reaches it exactly as it reaches a Raspberry Pi: ssh and scp, through an ssh_config (-F) whose
Host entry names the port, the key and the known host key.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edgeq.device.connect import free_tcp_port
from edgeq.errors import ToolFailed
from edgeq.tools import run_tool, start, stop

SSHD = "/usr/sbin/sshd"  # sshd refuses to start unless called by its absolute path
PROVIDES = "the Debian packages openssh-server and openssh-client"
HOST_ALIAS = "edgeq-emulated"
START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SshServer:
    address: str  # the Host entry of `config`
    config: Path  # an ssh_config for ssh -F and scp -F
    port: int


def _keypair(path: Path) -> None:
    run_tool(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgeq", "-f", str(path)], PROVIDES, kind="query")


def _wait_for(port: int, process, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ToolFailed(f"sshd exited ({process.returncode}) before it listened on 127.0.0.1:{port}: "
                             + log.read_text(errors="replace")[-600:])
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            if s.recv(4).startswith(b"SSH-"):
                return
        time.sleep(0.05)
    raise ToolFailed(f"sshd did not answer on 127.0.0.1:{port} within {START_TIMEOUT_S:.0f} s")


@contextlib.contextmanager
def local_ssh_server() -> Iterator[SshServer]:
    """sshd on a free port of 127.0.0.1 that lets this user in with a key made for the run."""
    if not Path(SSHD).is_file():
        raise ToolFailed(f"{SSHD} not found: install {PROVIDES}")
    with tempfile.TemporaryDirectory(prefix="edgeq-sshd-") as tmp:
        root = Path(tmp)
        _keypair(root / "host_key")
        _keypair(root / "client_key")
        (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
        port = free_tcp_port()
        user = getpass.getuser()
        (root / "sshd_config").write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
            f"StrictModes no\nUsePAM no\nAllowUsers {user}\nSubsystem sftp internal-sftp\nLogLevel ERROR\n")
        host_key = (root / "host_key.pub").read_text().split()
        (root / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
        (root / "ssh_config").write_text(
            f"Host {HOST_ALIAS}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n"
            f"  IdentityFile {root / 'client_key'}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {root / 'known_hosts'}\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n")
        if os.geteuid() == 0:  # sshd's privilege separation needs its empty directory
            Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        log = root / "sshd.log"
        with open(log, "wb") as out:
            process = start([SSHD, "-D", "-e", "-f", str(root / "sshd_config")], PROVIDES, stdout=out, stderr=out)
        try:
            _wait_for(port, process, log)
            yield SshServer(HOST_ALIAS, root / "ssh_config", port)
        finally:
            stop(process)
