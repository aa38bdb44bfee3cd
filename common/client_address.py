"""Who is asking: the client's address for throttles, from the socket unless a trusted proxy says.

`X-Forwarded-For` is a header anyone can send. It is read only when `TRUSTED_PROXIES` says a proxy
in front of the site appends to it: a count of proxies (each appends the address it was reached
from), or the proxies' addresses and networks (only a request whose socket peer is one of them
is believed, and the header is read from the right past every trusted hop). Without it, the
socket address (`REMOTE_ADDR`) is the client, whatever the headers claim.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

# Addresses looked at in one X-Forwarded-For header at most; a longer chain is someone padding it.
MAX_FORWARDED_HOPS = 32
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# One IPv6 subscriber gets a whole /64 and may pick any address in it at will: throttles count
# the /64, so rotating addresses inside it does not buy a fresh budget.
IPV6_CLIENT_PREFIX = 64
# What a request without a readable socket address counts as (one shared budget, never a bypass).
UNKNOWN_CLIENT = "unknown"


@lru_cache(maxsize=8)
def _networks(spelled: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(item) for item in spelled)


def _address(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _forwarded_chain(request: HttpRequest) -> list[str]:
    header = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [hop.strip() for hop in header.split(",")]
    return hops[-MAX_FORWARDED_HOPS:]


def client_address(request: HttpRequest) -> IPAddress | None:
    """Return the client's address (None when not even the socket gives a readable one)."""
    peer = _address(request.META.get("REMOTE_ADDR", "") or "")
    count, spelled = settings.TRUSTED_PROXY_COUNT, tuple(settings.TRUSTED_PROXY_NETWORKS)
    if peer is None or (not count and not spelled):
        return peer
    chain = _forwarded_chain(request)
    if count:
        # Each of `count` proxies appended the address it was reached from: the client's is the
        # count-th from the right. A shorter chain did not come through all of them.
        if len(chain) < count:
            return peer
        return _address(chain[-count]) or peer
    networks = _networks(spelled)
    if not any(peer in network for network in networks):
        return peer  # not sent by one of our proxies: its header is the sender's own claim
    client = peer
    for hop in reversed(chain):
        address = _address(hop)
        if address is None:
            return client  # garbage was appended before our proxies: the last good hop sent it
        client = address
        if not any(address in network for network in networks):
            return client
    return client


def client_ident(request: HttpRequest) -> str:
    """Return the key throttles count a client under: its address, an IPv6 client's /64."""
    address = client_address(request)
    if address is None:
        return UNKNOWN_CLIENT
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{address}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(address)
