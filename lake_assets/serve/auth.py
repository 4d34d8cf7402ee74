"""Logins: SCRAM-SHA-256 verifiers made from each user's password secret, and a guard that
rate-limits failed logins per user and client address.

Passwords come from secrets (`LAKE_SECRET_<NAME>` or the secrets file) named in access.yaml;
only their SCRAM verifiers stay in memory. An unknown user goes through the same exchange with
a verifier no password matches, so a failed login does not tell which users exist.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from scramp import ScramMechanism

from lake_assets.catalog.policy import Policy
from lake_assets.errors import SecretNotFoundError
from lake_assets.storage.secrets import get_secret

if TYPE_CHECKING:
    from scramp.core import ScramServer  # what make_server returns; scramp exports no name

MECHANISM = "SCRAM-SHA-256"
log = logging.getLogger(__name__)


class Credentials:
    """The SCRAM verifier of every user that has a password secret."""

    def __init__(self, policy: Policy, *,
                 secret: Callable[[str], str] = get_secret) -> None:
        self._mechanism = ScramMechanism(MECHANISM)
        self._verifiers: dict[str, tuple] = {}
        for user in policy.users():
            name = policy.password_secret(user)
            if name is None:
                continue
            try:
                password = secret(name)
            except SecretNotFoundError:
                log.warning("user %s cannot log in: secret %s is not set", user, name)
                continue
            self._verifiers[user] = self._mechanism.make_auth_info(password)
        self._decoy = self._mechanism.make_auth_info(secrets.token_urlsafe(32))

    def users(self) -> list[str]:
        """The users who can log in."""
        return sorted(self._verifiers)

    def exchange(self, user: str) -> ScramServer:
        """A SCRAM exchange for `user` (a decoy verifier for users who cannot log in)."""
        verifier = self._verifiers.get(user, self._decoy)
        # PostgreSQL clients leave the SCRAM user name empty: the startup message names the user.
        return self._mechanism.make_server(lambda _name: verifier)


class LoginGuard:
    """Refuses logins for `lockout` seconds after `attempts` failures within `window` seconds,
    per user and per client address."""

    def __init__(self, *, attempts: int = 5, window: float = 60.0, lockout: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.attempts = attempts
        self.window = window
        self.lockout = lockout
        self.clock = clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, user: str, client: str) -> float:
        """Seconds until `user` may try again from `client` (0: now)."""
        now = self.clock()
        with self._lock:
            until = max(self._locked_until.get(k, 0.0) for k in _keys(user, client))
        return max(0.0, until - now)

    def failed(self, user: str, client: str) -> None:
        """Count a failed login; locks the user and the address after too many."""
        now = self.clock()
        with self._lock:
            for key in _keys(user, client):
                recent = self._failures[key]
                recent.append(now)
                while recent and recent[0] < now - self.window:
                    recent.popleft()
                if len(recent) >= self.attempts:
                    self._locked_until[key] = now + self.lockout
                    recent.clear()

    def succeeded(self, user: str, client: str) -> None:
        """Forget the user's failures from this address."""
        with self._lock:
            self._failures.pop(f"user:{user}@{client}", None)


def _keys(user: str, client: str) -> tuple[str, str]:
    return f"user:{user}@{client}", f"client:{client}"
