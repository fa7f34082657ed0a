"""Which addresses a webhook may reach: the URL's host in every notation, what it resolves to, and why it is refused.

A webhook URL names a host chosen by a client; the service then connects there from inside its own network. Refused,
on subscription and again before every try (``notifications.webhooks``):

* **cloud metadata and platform services**, always, whatever the settings (``METADATA_ADDRESSES``,
  ``METADATA_NAMES``): 169.254.169.254, fd00:ec2::254, 100.100.100.200, 169.254.170.2, 168.63.129.16, ...;
* **this host's own addresses**, always unless ``BREITBAND_WEBHOOK_BLOCK_OWN_ADDRESSES=false``: every address of
  every interface (``own_networks``: the kernel's local routes in /proc/net/fib_trie for IPv4, /proc/net/if_inet6
  for IPv6, the addresses of the host name and the source addresses of the default routes), re-read every
  ``OWN_ADDRESSES_TTL_S`` seconds; the unspecified addresses 0.0.0.0 and :: (a connection to them reaches this host).
  Loopback is not in this class: it is blocked by the list below, so a test suite or a sidecar on 127.0.0.1 can be
  allowed by taking it off the list;
* the networks of ``BREITBAND_WEBHOOK_BLOCKED_NETWORKS`` (loopback, link-local, multicast by default; private
  networks stay allowed: receivers in a closed government network live there).

Every IPv4 address hidden in another notation is checked as itself: host numbers in decimal, octal or hex and with
fewer than four parts as ``inet_aton`` and browsers read them (``http://2130706433/``, ``http://0x7f.1/``,
``http://017700000001/``), and IPv4 addresses embedded in IPv6 ones (IPv4-mapped ``::ffff:127.0.0.1``,
IPv4-compatible ``::127.0.0.1``, IPv4-translated ``::ffff:0:127.0.0.1``, NAT64 ``64:ff9b::/96`` and
``64:ff9b:1::/48``, 6to4 ``2002::/16``, Teredo server and client, ISATAP interface identifiers).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from breitband.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Instance metadata and other platform services reachable from a cloud machine; blocked whatever the settings say.
METADATA_ADDRESSES: dict[Address, str] = {ipaddress.ip_address(a): what for a, what in {
    "169.254.169.254": "instance metadata (AWS, Azure, GCP, OpenStack, Oracle, DigitalOcean, Hetzner, IBM)",
    "fd00:ec2::254": "AWS instance metadata over IPv6",
    "169.254.169.253": "AWS DNS resolver",
    "fd00:ec2::253": "AWS DNS resolver over IPv6",
    "169.254.169.123": "AWS time sync",
    "fd00:ec2::123": "AWS time sync over IPv6",
    "169.254.170.2": "AWS ECS task metadata and credentials",
    "169.254.170.23": "AWS EKS Pod Identity agent",
    "fd00:ec2::23": "AWS EKS Pod Identity agent over IPv6",
    "fd20:ce::254": "GCP metadata over IPv6",
    "100.100.100.200": "Alibaba Cloud metadata",
    "168.63.129.16": "Azure WireServer",
    "192.0.0.192": "Oracle Cloud metadata (legacy)",
    "169.254.0.23": "Tencent Cloud metadata",
}.items()}
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                            "instance-data.ec2.internal", "metadata.tencentyun.com"})
UNSPECIFIED = frozenset({ipaddress.ip_address("0.0.0.0"), ipaddress.ip_address("::")})

NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")

OWN_ADDRESSES_TTL_S = 30.0

# What a refusal says about the address; the class is returned as ``address_class`` with the 422.
CLASSES = {
    "cloud-metadata": "a cloud metadata or platform service address (always blocked)",
    "own-host": "an address of this service's own host (always blocked; setting BREITBAND_WEBHOOK_BLOCK_OWN_ADDRESSES)",
    "unspecified": "the unspecified address, which reaches this host (always blocked)",
    "loopback": "a loopback address (setting BREITBAND_WEBHOOK_BLOCKED_NETWORKS)",
    "link-local": "a link-local address (setting BREITBAND_WEBHOOK_BLOCKED_NETWORKS)",
    "multicast": "a multicast address (setting BREITBAND_WEBHOOK_BLOCKED_NETWORKS)",
    "blocked-network": "in a network webhooks may not reach (setting BREITBAND_WEBHOOK_BLOCKED_NETWORKS)",
}


@dataclass(frozen=True)
class Blocked:
    """Why a host may not be reached: ``address`` (as resolved; an IPv4-mapped one as IPv4), the IPv4 address
    embedded in it that is blocked (if that is the reason), the class and, for metadata, which service."""

    address: str
    address_class: str
    embedded: str | None = None
    service: str | None = None

    def describe(self, host: str) -> str:
        where = host if host == self.address else f"{host} resolves to {self.address}, which"
        inner = f" embeds {self.embedded}, which is" if self.embedded else " is"
        what = CLASSES[self.address_class] + (f": {self.service}" if self.service else "")
        return f"{where}{inner} {what}; webhooks may not reach it"

    def problem_extra(self) -> dict[str, str]:
        out = {"address": self.address, "address_class": self.address_class}
        if self.embedded:
            out["embedded_address"] = self.embedded
        return out


# --- host notations -----------------------------------------------------------------------------------------------

_PART = {16: re.compile(r"[0-9a-fA-F]*"), 8: re.compile(r"[0-7]+"), 10: re.compile(r"[0-9]+")}


def loose_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in the notations ``inet_aton`` and the WHATWG URL parser accept: one to four parts, each
    decimal, octal (leading 0) or hex (0x), the last filling the remaining bytes (``127.1``, ``2130706433``,
    ``0x7f.1``, ``017700000001``), a trailing dot allowed. None when ``host`` is not one (a name)."""
    text = host[:-1] if host.endswith(".") else host
    parts = text.split(".")
    if not text or len(parts) > 4:
        return None
    values = []
    for part in parts:
        if part[:2].lower() == "0x":
            digits, base = part[2:], 16
        elif len(part) > 1 and part.startswith("0"):
            digits, base = part[1:], 8
        else:
            digits, base = part, 10
        if not _PART[base].fullmatch(digits) or (base != 16 and not digits):
            return None
        values.append(int(digits, base) if digits else 0)
    if any(v > 255 for v in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        return None
    number = values[-1]
    for i, v in enumerate(values[:-1]):
        number += v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def literal(host: str) -> Address | None:
    """The address ``host`` (a URL's host, brackets allowed) writes in any notation; None for a name. IPv6 zone ids
    are dropped (``fe80::1%eth0`` is fe80::1), IPv4-mapped IPv6 becomes IPv4 (that is where it connects)."""
    text = host.strip("[]")
    try:
        address: Address = ipaddress.ip_address(text)
    except ValueError:
        return loose_ipv4(text)
    return plain(address)


def plain(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(int(address))       # without the zone id
        if address.ipv4_mapped:
            return address.ipv4_mapped
    return address


def embedded_ipv4(address: Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (a packet to it may end up there)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    n, low = int(address), ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    out = []
    if address.ipv4_mapped:
        out.append(address.ipv4_mapped)
    if n >> 32 == 0 and n > 1:                               # IPv4-compatible ::a.b.c.d (not :: and ::1)
        out.append(low)
    if address in IPV4_TRANSLATED or any(address in net for net in NAT64):
        out.append(low)
    if address.sixtofour:
        out.append(address.sixtofour)
    if address.teredo:
        out.extend(address.teredo)                          # server, client (de-obfuscated)
    if (n >> 32) & 0xFDFFFFFF == 0x00005EFE:                 # ISATAP interface id ::0:5efe:a.b.c.d / ::200:5efe:...
        out.append(low)
    return list(dict.fromkeys(out))


# --- this host's addresses ----------------------------------------------------------------------------------------

_own: tuple[float, frozenset[Network]] = (-1e9, frozenset())


def own_networks(*, max_age_s: float = OWN_ADDRESSES_TTL_S) -> frozenset[Network]:
    """Every address (and local route, e.g. an AnyIP range) of this host, loopback excluded; cached for
    ``max_age_s`` so that a request does not read /proc each time but an address added later is seen soon."""
    global _own
    at, networks = _own
    if time.monotonic() - at <= max_age_s:
        return networks
    found: set[Network] = set()
    for source in (_fib_trie_local, _if_inet6, _hostname_addresses, _source_addresses):
        try:
            found |= source()
        except OSError:
            continue
    networks = frozenset(n for n in found if not n.network_address.is_loopback)
    _own = (time.monotonic(), networks)
    return networks


def _fib_trie_local(path: str = "/proc/net/fib_trie") -> set[Network]:
    """IPv4: the kernel's ``host LOCAL`` routes, which are exactly the addresses this host accepts as its own
    (every address of every interface, in every network namespace view the process has)."""
    out: set[Network] = set()
    current = None
    for line in Path(path).read_text().splitlines():
        text = line.strip()
        if text.startswith("|--"):
            current = text[3:].strip()
        elif text.startswith("/") and current is not None:
            fields = text.split()
            if fields[-1] == "LOCAL":
                out.add(ipaddress.ip_network(f"{current}/{fields[0][1:]}", strict=False))
    return out


def _if_inet6(path: str = "/proc/net/if_inet6") -> set[Network]:
    """IPv6: every address of every interface (32 hex digits per line)."""
    out: set[Network] = set()
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if fields and len(fields[0]) == 32:
            out.add(ipaddress.IPv6Network((int(fields[0], 16), 128)))
    return out


def _hostname_addresses() -> set[Network]:
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return set()
    return {ipaddress.ip_network(plain(ipaddress.ip_address(i[4][0].split("%")[0]))) for i in infos}


def _source_addresses() -> set[Network]:
    """The address each family's default route sends from (a UDP connect picks the route; nothing is sent). Works
    where /proc does not (macOS)."""
    out: set[Network] = set()
    for family, probe in ((socket.AF_INET, "198.51.100.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                out.add(ipaddress.ip_network(plain(ipaddress.ip_address(s.getsockname()[0].split("%")[0]))))
        except OSError:
            continue
    return out


# --- the check ----------------------------------------------------------------------------------------------------

def blocked_name(host: str) -> Blocked | None:
    name = host.lower().rstrip(".")
    if name in METADATA_NAMES:
        return Blocked(address=name, address_class="cloud-metadata", service="cloud metadata host name")
    return None


def check(address: Address, settings: Settings) -> Blocked | None:
    """Why ``address`` may not be reached, or None. The address itself and every IPv4 address embedded in it are
    checked against every class."""
    address = plain(address)
    for candidate in [address, *embedded_ipv4(address)]:
        cls, service = _class_of(candidate, settings)
        if cls is not None:
            return Blocked(address=str(address), address_class=cls,
                           embedded=str(candidate) if candidate != address else None, service=service)
    return None


def first_blocked(addresses: list[Address], settings: Settings) -> Blocked | None:
    for address in sorted(addresses, key=str):
        found = check(address, settings)
        if found is not None:
            return found
    return None


def _class_of(address: Address, settings: Settings) -> tuple[str | None, str | None]:
    if address in METADATA_ADDRESSES:
        return "cloud-metadata", METADATA_ADDRESSES[address]
    if address in UNSPECIFIED:
        return "unspecified", None
    if settings.webhook_block_own_addresses and any(
            address.version == net.version and address in net for net in own_networks()):
        return "own-host", None
    for net in settings.webhook_blocked_networks:
        network = ipaddress.ip_network(net, strict=False)
        if address.version == network.version and address in network:
            if address.is_loopback:
                return "loopback", None
            if address.is_link_local:
                return "link-local", None
            if address.is_multicast:
                return "multicast", None
            if address.is_unspecified:
                return "unspecified", None
            return "blocked-network", None
    return None, None
