"""Who may connect, and who may only watch: the access control INDI itself lacks.

Decided once per client, when it is accepted, from its address: not in `allow` -> closed at
once, without a word; in `read_only` -> served, but every newXXXVector it sends is refused
with a message (hub.py); past `max_clients` connected -> told why in one INDI message and
closed. Clients on the local abstract socket are on this machine and count as 127.0.0.1
(the socket is reachable only from this host's network namespace). IPv4 clients of a
dual-stack listener arrive as ::ffff:a.b.c.d and are judged as a.b.c.d.

No I/O here: the listeners (tcp.py, local.py) ask, act and release.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from enum import Enum

from qhy42_indi.config import IpNetwork, ServerConfig, networks

log = logging.getLogger(__name__)

LOCAL_ADDRESS = "127.0.0.1"


class Verdict(Enum):
    ALLOWED = "allowed"
    READ_ONLY = "read-only"
    NOT_ALLOWED = "not in server.allow"
    TOO_MANY = "too many clients"


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    allow: tuple[IpNetwork, ...]
    read_only: tuple[IpNetwork, ...] = ()
    max_clients: int = 0  # 0: no limit

    @classmethod
    def from_config(cls, server: ServerConfig) -> AccessPolicy:
        return cls(
            allow=networks("server.allow", server.allow),
            read_only=networks("server.read_only", server.read_only),
            max_clients=server.max_clients,
        )

    @classmethod
    def open(cls) -> AccessPolicy:
        """Everyone, read-write, no limit: indiserver's behaviour."""
        return cls(allow=networks("allow", ["0.0.0.0/0", "::/0"]))


def client_address(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address to judge: IPv4-mapped IPv6 as IPv4, a zone index (fe80::1%eth0) dropped."""
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def _within(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, nets: tuple[IpNetwork, ...]
) -> bool:
    return any(address.version == net.version and address in net for net in nets)


class AccessControl:
    """The policy and the count of clients it let in, shared by every listener."""

    def __init__(self, policy: AccessPolicy) -> None:
        self.policy = policy
        self.clients = 0

    def judge(self, address: str) -> Verdict:
        """What the policy says of a client at this address, counting the clients now in."""
        verdict = self.permits(address)
        limit = self.policy.max_clients
        if verdict is not Verdict.NOT_ALLOWED and limit and self.clients >= limit:
            return Verdict.TOO_MANY
        return verdict

    def permits(self, address: str) -> Verdict:
        """The policy's word on one request from this address, whatever the count: for
        HTTP, where a client is not a connection (ALLOWED, READ_ONLY or NOT_ALLOWED)."""
        parsed = client_address(address)
        if parsed is None or not _within(parsed, self.policy.allow):
            return Verdict.NOT_ALLOWED
        if _within(parsed, self.policy.read_only):
            return Verdict.READ_ONLY
        return Verdict.ALLOWED

    def admit(self, address: str, peer: str) -> Verdict:
        """Judge a new client and count it in when it may stay; logs a refusal."""
        verdict = self.judge(address)
        if verdict in (Verdict.ALLOWED, Verdict.READ_ONLY):
            self.clients += 1
        elif verdict is Verdict.TOO_MANY:
            log.warning("client %s refused: %d clients connected (server.max_clients)",
                        peer, self.clients)
        else:
            log.warning("client %s refused: its address is not in server.allow", peer)
        return verdict

    def release(self) -> None:
        """A client counted in by admit() has gone."""
        self.clients = max(0, self.clients - 1)

    def too_many_text(self) -> str:
        return (f"[ERROR] qhy42-indi: {self.policy.max_clients} clients are connected, the "
                "most this server takes (server.max_clients); try again later")
