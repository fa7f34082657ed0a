"""Local accounts: signing in with e-mail address and password (and a TOTP code where the second factor is on or
required), lockout with back-off, setting and changing passwords, setting up and removing the second factor.

Lockout, per account: after ``LOCK_AFTER`` (5) consecutive failures (wrong password or wrong code) the account
refuses every attempt for 1 minute, and each further failure after that doubles it, up to 60 minutes; a successful
sign-in resets it. Refused attempts answer 429 ``too-many-sign-in-attempts`` with Retry-After. Per client address,
the failed attempts count towards the same limit as failed API authentications (``rate_limit_auth_failures``,
breitband/limits.py; the endpoint applies it).

Nothing tells whether an address has an account: an unknown address (or an account without a password) is verified
against a dummy Argon2id hash, so it takes as long, answers the same 401 ``sign-in-failed``, and is locked out
after the same failures — its counter lives in Redis (``AddressThrottle``, keyed by tenant and a hash of the address,
kept 30 days) because it has no row. Only after the right password does an answer differ (deactivated, second
factor), and that is no news to whoever knows the password.

Services flush; the caller commits — also when a sign-in is refused, so that counters and events stay
(accounts/endpoints.py returns the refusal as its answer instead of raising it).
"""

from __future__ import annotations

import hashlib
import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from accounts import events, passwords, totp
from accounts.events import Origin
from breitband import clock, identity, sessions
from breitband.errors import Conflict, ProblemError, Unauthorized, UnprocessableEntity
from breitband.limits import TooManyRequests
from breitband.models import Role, Tenant, User, WebSession

log = logging.getLogger("accounts.local")

LOCK_AFTER = 5
FIRST_LOCK = timedelta(minutes=1)
LONGEST_LOCK = timedelta(minutes=60)
UNKNOWN_KEPT = timedelta(days=30)
SIGN_IN_FAILED = "The e-mail address or the password is wrong"


def lock_for(failures: int) -> timedelta | None:
    """How long the account is locked after ``failures`` consecutive failures: none below LOCK_AFTER, then 1 minute
    doubling per further failure, at most 60 minutes."""
    if failures < LOCK_AFTER:
        return None
    return min(FIRST_LOCK * 2 ** min(failures - LOCK_AFTER, 16), LONGEST_LOCK)


def too_many(until: datetime, now: datetime) -> TooManyRequests:
    seconds = max(1, math.ceil((until - now).total_seconds()))
    return TooManyRequests(f"Too many failed sign-ins for this address; try again in {seconds} s (or reset your "
                           "password)", seconds, type="too-many-sign-in-attempts")


def totp_required(tenant: Tenant, role: Role | str) -> bool:
    """Whether the tenant's rules ([sign_in] totp_required_roles) require a second factor for the role."""
    sign_in = (tenant.rules or {}).get("sign_in") or {}
    return Role(role).value in (sign_in.get("totp_required_roles") or [])


# --- the counter of addresses without an account -------------------------------------------------------------------

class AddressThrottle:
    """Failures and lock of (tenant, address) pairs that have no account, in the rate limits' Redis: the same state
    an account keeps in ``users.failed_sign_ins`` / ``locked_until``. Redis down: no lock for unknown addresses (the
    rate limits fail open the same way); logged by breitband.limits' own warnings."""

    prefix = "breitband:signin:unknown:"

    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=0.2, socket_timeout=0.2)

    def key(self, tenant_key: str, email: str) -> str:
        return self.prefix + tenant_key + ":" + hashlib.sha256(email.encode()).hexdigest()

    def locked_until(self, tenant_key: str, email: str) -> datetime | None:
        try:
            value = self._redis.hget(self.key(tenant_key, email), "locked_until")
        except redis.RedisError as exc:
            log.warning("sign-in throttle of unknown addresses unavailable: %s", type(exc).__name__)
            return None
        return datetime.fromisoformat(value.decode()) if value else None

    def fail(self, tenant_key: str, email: str, now: datetime) -> tuple[int, datetime | None]:
        """Count a failure; → (consecutive failures, locked until or None)."""
        key = self.key(tenant_key, email)
        try:
            failures = int(self._redis.hincrby(key, "failures", 1))
            lock = lock_for(failures)
            until = now + lock if lock else None
            pipe = self._redis.pipeline()
            if until is not None:
                pipe.hset(key, "locked_until", until.isoformat())
            pipe.expire(key, int(UNKNOWN_KEPT.total_seconds()))
            pipe.execute()
            return failures, until
        except redis.RedisError as exc:
            log.warning("sign-in throttle of unknown addresses unavailable: %s", type(exc).__name__)
            return 0, None

    def close(self) -> None:
        self._redis.close()


# --- signing in -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SignedIn:
    user: User
    started: sessions.Started
    totp_enrolment_required: bool


def sign_in(session: Session, throttle: AddressThrottle, *, tenant_key: str, email: str, password: str,
            totp_code: str | None, client: Origin, now: datetime | None = None) -> SignedIn:
    """Check the credentials and start a session, or raise the refusal (401/429 problem) with the failure counted
    and recorded in the session (commit it anyway)."""
    now = now or clock.now()
    tenant = identity.get_tenant(session, tenant_key)
    typed = email.strip()
    address = typed.lower()
    user = session.scalar(select(User).where(User.tenant_key == tenant.key, User.email == address)
                          .with_for_update())
    if user is None or user.password_hash is None:
        _refuse_unknown(session, throttle, tenant.key, address, typed, password, user, client, now)
    if user.locked_until is not None and user.locked_until > now:
        raise too_many(user.locked_until, now)
    if not passwords.verify(user.password_hash, password):
        raise _failed(session, user, typed, client, now, "password")
    rehash_if_needed(user, password)
    if not user.active:
        raise Unauthorized("The user is deactivated; ask your organisation's administrator or the operating office",
                           type="user-deactivated")
    mfa = _second_factor(session, user, typed, totp_code, client, now)
    return start_session(session, tenant, user, client, now, mfa=mfa)


def _refuse_unknown(session: Session, throttle: AddressThrottle, tenant_key: str, address: str, typed: str,
                    password: str, user: User | None, client: Origin, now: datetime) -> None:
    """An address without an account, or an account without a password (invited, or OIDC only): the same time, the
    same answers, the same lockout as a wrong password."""
    until = throttle.locked_until(tenant_key, address)
    if until is not None and until > now:
        raise too_many(until, now)
    passwords.verify_dummy(password)
    failures, until = throttle.fail(tenant_key, address, now)
    reason = "unknown-address" if user is None else "no-password"
    events.record(session, "sign-in-failed", tenant_key, client, user_id=user.id if user else None, email=typed,
                  detail={"reason": reason}, now=now)
    if until is not None:
        events.record(session, "lockout", tenant_key, client, user_id=user.id if user else None, email=typed,
                      detail={"failures": failures, "until": until.isoformat(), "reason": reason}, now=now)
    raise Unauthorized(SIGN_IN_FAILED, type="sign-in-failed")


def _failed(session: Session, user: User, typed: str, client: Origin, now: datetime, reason: str) -> ProblemError:
    """Count a failure of a known account (locking it from LOCK_AFTER on) and record it; → the 401 to answer."""
    user.failed_sign_ins = (user.failed_sign_ins or 0) + 1
    lock = lock_for(user.failed_sign_ins)
    events.record(session, "sign-in-failed", user.tenant_key, client, user_id=user.id, email=typed,
                  detail={"reason": reason}, now=now)
    if lock is not None:
        user.locked_until = now + lock
        events.record(session, "lockout", user.tenant_key, client, user_id=user.id, email=typed,
                      detail={"failures": user.failed_sign_ins, "until": user.locked_until.isoformat(),
                              "minutes": lock.total_seconds() / 60}, now=now)
    session.flush()
    if reason == "totp":
        return Unauthorized("The code from the authenticator app is wrong or was used already; wait for the next "
                            "one", type="totp-invalid")
    return Unauthorized(SIGN_IN_FAILED, type="sign-in-failed")


def _second_factor(session: Session, user: User, typed: str, code: str | None, client: Origin,
                   now: datetime) -> bool:
    """When the user has a second factor: the code must be right and unused. → whether one was used."""
    if user.totp_enabled_at is None or not user.totp_secret:
        return False
    if not (code or "").strip():
        raise Unauthorized("Enter the code from your authenticator app (totp_code)", type="totp-required")
    try:
        digits = totp.normalise_code(code)
    except UnprocessableEntity:
        raise _failed(session, user, typed, client, now, "totp") from None
    step = totp.matching_step(user.totp_secret, digits, at=now, last_step=user.totp_last_step)
    if step is None:
        raise _failed(session, user, typed, client, now, "totp")
    user.totp_last_step = step
    return True


def start_session(session: Session, tenant: Tenant, user: User, client: Origin, now: datetime, *, mfa: bool,
                  method: str = "password") -> SignedIn:
    """A person proved who they are (password, and code where on; or an invitation/reset link): unlock the account,
    start a new session — restricted to the second factor's set-up where the tenant requires one for the role and
    none was used — and record the sign-in."""
    user.failed_sign_ins = 0
    user.locked_until = None
    user.last_sign_in_at = now
    enrol = not mfa and totp_required(tenant, user.role)
    started = sessions.start(session, user.id, method=method, mfa=mfa, client_ip=client.client_ip,
                             user_agent=client.user_agent, restricted=sessions.RESTRICTED_TOTP if enrol else None,
                             now=now)
    detail = {"method": method, "mfa": mfa, "session_id": str(started.id)}
    if enrol:
        detail["restricted"] = sessions.RESTRICTED_TOTP
    events.record(session, "sign-in", user.tenant_key, client, user_id=user.id, actor_id=user.id, email=user.email,
                  detail=detail, now=now)
    return SignedIn(user=user, started=started, totp_enrolment_required=enrol)


def rehash_if_needed(user: User, password: str) -> None:
    """After a successful verification: store a hash with today's parameters when the stored one is older."""
    if user.password_hash and passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)


# --- passwords ---------------------------------------------------------------------------------------------------

def set_password(session: Session, user: User, password: str, *, actor_id: uuid.UUID | None, client: Origin,
                 keep_session: uuid.UUID | None = None, field: str = "password", how: str = "set",
                 now: datetime | None = None) -> int:
    """Give ``user`` a new password (policy applied), unlock the account and end their sessions but
    ``keep_session``. → the number of sessions ended."""
    now = now or clock.now()
    passwords.check(password, email=user.email, name=user.name, field=field)
    user.password_hash = passwords.hash_password(password)
    user.password_changed_at = now
    user.failed_sign_ins = 0
    user.locked_until = None
    ended = sessions.end_all(session, user.id, except_id=keep_session, now=now)
    events.record(session, "password-set", user.tenant_key, client, user_id=user.id, actor_id=actor_id,
                  email=user.email, detail={"how": how, "sessions_ended": ended}, now=now)
    return ended


def change_password(session: Session, user: User, current: str, new: str, *, client: Origin,
                    current_session: uuid.UUID | None, now: datetime | None = None) -> int:
    """The user's own change: the current password first (a wrong one counts as a failed sign-in: a stolen session
    cannot guess it at leisure), then the policy; the other sessions end."""
    now = now or clock.now()
    if user.locked_until is not None and user.locked_until > now:
        raise too_many(user.locked_until, now)
    if not passwords.verify(user.password_hash, current):
        _failed(session, user, user.email, client, now, "password-change")
        raise UnprocessableEntity("The current password is wrong", type="current-password-wrong",
                                  field="current_password")
    if current == new:
        raise UnprocessableEntity("The new password is the current one; choose another", type="password-unchanged",
                                  field="new_password")
    return set_password(session, user, new, actor_id=user.id, client=client, keep_session=current_session,
                        field="new_password", how="changed", now=now)


# --- the second factor ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Enrolment:
    secret: str
    otpauth_uri: str
    qr_svg: str


def begin_totp(session: Session, user: User, tenant: Tenant) -> Enrolment:
    """A new secret, pending until confirmed with a code (a second call replaces a pending one); 409 when a second
    factor is already on (remove it first)."""
    if user.totp_enabled_at is not None:
        raise Conflict("A second factor is already set up; remove it first (DELETE /api/v1/me/totp) to set up "
                       "another", type="totp-already-enabled")
    user.totp_secret = totp.new_secret()
    user.totp_last_step = None
    session.flush()
    uri = totp.otpauth_uri(user.totp_secret, user.email, tenant.name)
    return Enrolment(secret=user.totp_secret, otpauth_uri=uri, qr_svg=totp.qr_svg(uri))


def confirm_totp(session: Session, user: User, code: str, *, current_session: uuid.UUID | None, client: Origin,
                 now: datetime | None = None) -> None:
    """Turn the pending secret on with a code from the app; a session restricted to this set-up becomes a full one
    (with a second factor)."""
    now = now or clock.now()
    if user.totp_enabled_at is not None:
        raise Conflict("The second factor is already on", type="totp-already-enabled")
    if not user.totp_secret:
        raise Conflict("Start the set-up first (POST /api/v1/me/totp)", type="totp-not-started")
    step = totp.matching_step(user.totp_secret, totp.normalise_code(code, field="code"), at=now,
                              last_step=user.totp_last_step)
    if step is None:
        raise UnprocessableEntity("The code does not match; check the time on your phone and enter the code it "
                                  "shows now", type="totp-invalid", field="code")
    user.totp_enabled_at = now
    user.totp_last_step = step
    if current_session is not None:
        session.execute(update(WebSession).where(WebSession.id == current_session)
                        .values(restricted=None, mfa=True).execution_options(synchronize_session=False))
    events.record(session, "totp-enabled", user.tenant_key, client, user_id=user.id, actor_id=user.id,
                  email=user.email, now=now)


def disable_totp(session: Session, user: User, tenant: Tenant, password: str, *, client: Origin,
                 now: datetime | None = None) -> None:
    """Remove the second factor (the password confirms it is the user); 409 when the tenant requires one for the
    user's role."""
    now = now or clock.now()
    if not passwords.verify(user.password_hash, password):
        raise UnprocessableEntity("The password is wrong", type="password-wrong", field="password")
    if totp_required(tenant, user.role):
        raise Conflict(f"Your tenant requires a second factor for the role {user.role}; it cannot be removed",
                       type="totp-required-by-tenant")
    if user.totp_secret is None and user.totp_enabled_at is None:
        return
    was_on = user.totp_enabled_at is not None
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    session.flush()
    if was_on:
        events.record(session, "totp-disabled", user.tenant_key, client, user_id=user.id, actor_id=user.id,
                      email=user.email, now=now)
