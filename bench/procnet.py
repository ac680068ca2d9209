"""Linux's view of TCP sockets: /proc/net/tcp{,6} (each socket's ports, state and inode) and
/proc/PID/fd (which process holds which socket). Which worker the kernel gave a connection to,
for bench/common.py (connections per worker, in bench/ingest.py and bench/accept_spread.py) and
tests/mythline_site/test_serve.py (a burst's spread, listening sockets per port). A socket held
by several of the processes asked (inherited descriptors) counts for one of them. Empty where
/proc is not there."""
import os
from dataclasses import dataclass
from pathlib import Path

LISTEN, ESTABLISHED = "0A", "01"  # the `st` column (include/net/tcp_states.h)


@dataclass(frozen=True)
class TcpSocket:
    local_port: int
    remote_port: int
    state: str
    inode: str


def tcp_sockets(local_port: int | None = None) -> list[TcpSocket]:
    """Every TCP socket of this network namespace (IPv4 and IPv6), or those on `local_port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            sock = TcpSocket(int(cols[1].rsplit(":", 1)[1], 16), int(cols[2].rsplit(":", 1)[1], 16), cols[3], cols[9])
            if local_port is None or sock.local_port == local_port:
                found.append(sock)
    return found


def socket_holders(pids) -> dict[str, int]:
    """{socket inode: the pid holding it} over `pids`' open descriptors (gone processes skipped)."""
    holders = {}
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:["):
                holders[link[8:-1]] = pid
    return holders
