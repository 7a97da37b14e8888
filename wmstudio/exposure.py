"""Secure by default: a service bound beyond loopback must be protected, or refuse to start.

``make run`` binds 127.0.0.1, where only this machine can connect, so it may stay open. Every
deployment (Dockerfile, compose, Kubernetes) binds 0.0.0.0: there, the API needs keys and the
dashboard and demo need logins, unless ``WMSTUDIO_ALLOW_INSECURE=1`` says on purpose that the
network itself is trusted. One rule, one place, so the three front doors cannot drift apart.
"""

from __future__ import annotations

import ipaddress

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


class InsecureDeployment(RuntimeError):
    """A service would be reachable from the network without authentication."""


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a hostname or a wildcard: assume it is reachable


def require_protection(service: str, host: str, protected: bool, allow_insecure: bool, how: str) -> None:
    """Raise ``InsecureDeployment`` when ``service`` would serve ``host`` unprotected.

    ``how`` names the setting that protects it, so the message tells the operator what to set.
    """
    if protected or allow_insecure or is_loopback(host):
        return
    raise InsecureDeployment(
        f"refusing to start the {service} on {host} without authentication: set {how}, or "
        "WMSTUDIO_ALLOW_INSECURE=1 on a trusted network (loopback binds need neither)"
    )
