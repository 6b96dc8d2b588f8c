"""Reaching a running firmware over serial: QEMU with UART0 on a loopback TCP port, the native host
program on a pseudo-terminal, or a real board's serial port. Each is a context manager that yields an
open `edgeq.device.link.Link` and, on the way out, however it is left, stops what it started.

QEMU and the host program run in their own process group, which is killed in a `finally`; on Linux
they also get SIGKILL if edgeq itself dies (PR_SET_PDEATHSIG), so no emulator is ever left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import time
import tty
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import serial

from edgeq.boards import board_params_for
from edgeq.device.cycles import plugin_for, refuse_unless_emulated
from edgeq.device.flash import HostRunner, QemuRunner
from edgeq.device.link import Link
from edgeq.errors import BadInput, ToolFailed
from edgeq.protocol import LinkError
from edgeq.tools import require, start, stop

log = logging.getLogger("edgeq.connect")

CONNECT_TIMEOUT_S = 10.0


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    return " | ".join(text.splitlines()[-lines:])


@dataclass
class Qemu:
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def exited(self) -> str | None:
        """Why QEMU is no longer running, or None while it runs."""
        if self.process.poll() is None:
            return None
        return f"QEMU exited with code {self.process.returncode} ({_log_tail(self.log_path) or 'no output'})"


def check_port_free(port: int) -> None:
    """ToolFailed naming the port when something already listens on 127.0.0.1:port."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as QEMU does: TIME_WAIT is no obstacle
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ToolFailed(f"TCP port {port} on 127.0.0.1 is busy: QEMU cannot serve the UART there "
                             f"({exc.strerror})") from None


@contextlib.contextmanager
def start_qemu(machine: str, elf: Path, log_path: Path, serial_port: int | None = None,
               plugin: str | None = None) -> Iterator[Qemu]:
    """QEMU running `elf` on `machine`, UART0 served on 127.0.0.1:port; with wait=on the CPU starts
    only once a client connects, so the first HELLO is not lost. `plugin`: a TCG plugin and its
    arguments (edgeq.device.cycles.CyclePlugin.argument). Stopped when the block ends."""
    if not elf.is_file():
        raise BadInput(f"{elf}: no such firmware; build it first (edgeq build)")
    port = serial_port if serial_port is not None else free_tcp_port()
    check_port_free(port)
    with open(log_path, "wb") as stderr:
        process = start(QemuRunner().command(machine, elf, port, plugin), QemuRunner.provides, stdout=stderr,
                        stderr=stderr)
    try:
        yield Qemu(process, port, log_path)
    finally:
        stop(process)


def _explained(exc: LinkError, why: str) -> LinkError:
    """The same failure, saying why the device went away."""
    try:
        explained = type(exc)(f"{exc}; {why}")
    except TypeError:  # a subclass with its own constructor (DeviceError)
        explained = LinkError(f"{exc}; {why}")
    explained.__dict__.update(exc.__dict__)  # keeps what was measured before the failure
    return explained


def open_link(url: str, baud: int = 115200, *, exclusive: bool = False, alive=lambda: None) -> Link:
    """Link.open, retried until CONNECT_TIMEOUT_S while `alive()` says nothing went wrong (None)."""
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        try:
            port = serial.serial_for_url(url, baudrate=baud, timeout=0.05, do_not_open=True)
            if exclusive:
                port.exclusive = True
            port.open()
            return Link(port, url)
        except (serial.SerialException, ValueError, OSError) as exc:
            busy = "exclusively lock" in str(exc) or "Device or resource busy" in str(exc)
            if busy:
                raise LinkError(f"serial port {url} is busy: another program has it open ({exc})") from exc
            why = alive()
            if why is not None and "in use" in why:
                raise ToolFailed(f"{url}: the port is busy, QEMU cannot serve the UART there ({why})") from exc
            if why is not None or time.monotonic() > deadline:
                raise LinkError(f"cannot open serial port {url}: {why or exc}") from exc
            time.sleep(0.05)


@contextlib.contextmanager
def qemu_link(machine: str, elf: Path, log_path: Path, serial_port: int | None = None,
              plugin: str | None = None) -> Iterator[Link]:
    """An open Link to `elf` running in QEMU; QEMU is stopped when the block ends."""
    with start_qemu(machine, elf, log_path, serial_port, plugin) as qemu:
        link = open_link(qemu.url, alive=qemu.exited)
        try:
            yield link
        except LinkError as exc:
            why = qemu.exited()
            if why is None:
                raise
            raise _explained(exc, why) from exc
        finally:
            link.close()


@contextlib.contextmanager
def host_link(program: Path, log_path: Path) -> Iterator[Link]:
    """An open Link to the native firmware running on a pseudo-terminal: the program gets the pty
    master as stdin/stdout, edgeq opens the slave as it would a board's serial port."""
    if not program.is_file():
        raise BadInput(f"{program}: no such program; build it first (edgeq build)")
    master, slave = os.openpty()
    tty.setraw(slave)  # before the program writes: a cooked tty would echo and translate bytes
    path = os.ttyname(slave)
    try:
        with open(log_path, "wb") as stderr:
            process = start(HostRunner().command(program), HostRunner.provides, stdin=master, stdout=master,
                            stderr=stderr)
    finally:
        os.close(master)

    def exited() -> str | None:
        if process.poll() is None:
            return None
        return f"the program exited with code {process.returncode} ({_log_tail(log_path) or 'no output'})"

    try:
        link = open_link(path, alive=exited)
        try:
            yield link
        except LinkError as exc:
            why = exited()
            if why is None:
                raise
            raise _explained(exc, why) from exc
        finally:
            link.close()
    finally:
        os.close(slave)  # the program now reads end of input, eq_serve returns, main returns
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        stop(process)


@contextlib.contextmanager
def serial_link(port: str, baud: int) -> Iterator[Link]:
    """A real board's serial port, locked so that no other program reads our replies."""
    link = open_link(port, baud, exclusive=True)
    try:
        yield link
    finally:
        link.close()


def device_link(profile, elf: Path, log_dir: Path, port: str | None = None, *,
                cycles_out: Path | None = None) -> contextlib.AbstractContextManager[Link]:
    """The Link to the firmware `elf` on `profile`'s device: started under QEMU or as a host program,
    or, for a real board, its serial port (already flashed). With `cycles_out`, QEMU runs edgeq's
    cycle plugin, which writes each inference's instruction classes there (edgeq.device.cycles)."""
    method = profile.flash.method
    if cycles_out is not None:
        refuse_unless_emulated(profile)
    if method == "qemu":
        if port is not None:
            raise BadInput(f"--port is for real boards; edgeq serves {profile.name}'s UART on a free local port")
        board = board_params_for(profile)
        plugin = None
        if cycles_out is not None:
            require("qemu-system-arm")  # named before the plugin's own tools: it is what runs the board
            plugin = plugin_for(board, elf, cycles_out, profile.toolchain.tool("nm")).argument()
        return qemu_link(board.board, elf, log_dir / "qemu.log", plugin=plugin)
    if method == "host":
        if port is not None:
            raise BadInput("--port is for real boards; the host program runs on a pseudo-terminal edgeq opens")
        return host_link(elf, log_dir / "host.log")
    if port is None:
        raise BadInput(f"{profile.name} is a real board: give its serial port with --port "
                       "(/dev/ttyACM0, socket://HOST:PORT, rfc2217://...)")
    return serial_link(port, profile.serial.baud)
