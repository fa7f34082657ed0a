"""Settings: one pydantic-settings class, env prefix ``BREITBAND_``, every value with a working local default."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BREITBAND_", env_file=None, extra="ignore")

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/breitband"
    # Optional read-only replica for list and tile endpoints; falls back to database_url.
    database_readonly_url: str | None = None
    database_pool_size: int = 10

    broker_url: str = "redis://127.0.0.1:6379/0"
    # Task results (used by health checks and tests); Redis by default, separate db from the broker.
    result_backend: str = "redis://127.0.0.1:6379/1"
    task_soft_time_limit_s: int = 300
    task_time_limit_s: int = 360

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    # Demo and development only: /dev/mail shows tenant admins what `breitband mailcatcher` caught (scripts/run).
    dev_mail: bool = False
    smtp_sender: str = "Breitband <noreply@breitband.localhost>"

    public_base_url: str = "http://localhost:8000"
    host: str = "127.0.0.1"
    port: int = 8000

    data_dir: Path = Field(default=PROJECT_ROOT / "var" / "data")
    # Largest accepted attachment (PDF, image, CAD or GIS file) of a permit application, in MiB.
    max_attachment_mb: float = Field(default=25.0, gt=0)
    # Attachment quota per application (permits/applications/attachments.py): at most this many files (422 beyond)
    # and this many MiB together (413 beyond); every stored attachment counts, submitted or not.
    max_attachments_per_application: int = Field(default=50, gt=0)
    max_attachments_total_mb: float = Field(default=200.0, gt=0)
    # Zip attachments (Shapefile zip, KMZ; breitband/zips.py) are refused (422) with more members than this, more
    # MiB unpacked, or a member (or all together) of over 1 MiB compressed more than this ratio : 1 (zip bombs);
    # zips inside zips never. Zipped route files keep breitband.zips' defaults, the same values. Every member is read
    # through once to check it: 256 MiB unpacked cost about 3 s of CPU (bench/attachment_checks.py). 100 : 1 as
    # Apache POI's ZipSecureFile; real Shapefile zips stay far below it.
    zip_max_members: int = Field(default=200, gt=0)
    zip_max_unzipped_mb: float = Field(default=256.0, gt=0)
    zip_max_ratio: float = Field(default=100.0, gt=1)
    log_level: str = "INFO"
    # json: one JSON object per line (for log collectors); text: one readable line per record (scripts/run's files)
    log_format: Literal["json", "text"] = "json"
    # Seconds that /readyz waits for a broker connection and a worker's answer.
    readiness_timeout_s: float = 2.0
    # How often the Content-Security-Policy re-reads the origins of the tenants' external base layers (seconds)
    csp_refresh_s: float = 30.0

    # Notifications: the outbox relay, e-mail and webhooks (notifications/).
    outbox_batch_size: int = Field(default=200, gt=0)
    smtp_timeout_s: float = 10.0
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: str | None = None
    webhook_timeout_s: float = 10.0
    # An application's contact e-mail (typed by the operator) gets notices only after its owner confirmed it through
    # a single-use link (notifications/contacts.py); the link expires after this many hours.
    contact_confirmation_ttl_h: float = Field(default=168.0, gt=0)
    # Webhook URLs whose host is or resolves to an address in these networks are refused, on subscription and
    # again before every delivery (no requests into the service's own machine or the cloud metadata service).
    # Private networks (10/8, 172.16/12, 192.168/16) stay allowed: receivers in a closed government network live
    # there. JSON list in the environment, e.g. BREITBAND_WEBHOOK_BLOCKED_NETWORKS='["169.254.0.0/16"]'.
    webhook_blocked_networks: list[str] = Field(default_factory=lambda: [
        "127.0.0.0/8", "::1/128", "0.0.0.0/8", "::/128", "169.254.0.0/16", "fe80::/10", "224.0.0.0/4", "ff00::/8"])
    # Besides that list, always refused: cloud metadata addresses (169.254.169.254, fd00:ec2::254, 100.100.100.200,
    # ...) and, while this is true, every address of the service's own host but loopback (which the list governs);
    # see notifications/addresses.py. Turn it off only for a receiver that runs on the same machine on purpose.
    webhook_block_own_addresses: bool = True
    # A failed e-mail or webhook is retried after base, 2×base, 4×base, ... (each wait at most max_delay) until
    # window_h after the event; then the delivery is given up (status failed, manual redelivery possible).
    notify_retry_base_s: float = Field(default=30.0, gt=0)
    notify_retry_max_delay_s: float = Field(default=7200.0, gt=0)
    notify_retry_window_h: float = Field(default=24.0, gt=0)
    # How long a worker owns a delivery while sending it (a worker that died is presumed dead after this).
    notify_lease_s: float = Field(default=120.0, gt=0)
    # Per-tenant templates (e-mails, decision documents): <templates_root>/<tenant>/templates, falling back to
    # <templates_root>/default/templates.
    templates_root: Path = Field(default=PROJECT_ROOT / "data" / "tenants")

    # Review pipeline (permits/pipeline/service.py): a run whose step made no progress for this long is started again.
    pipeline_stale_after_s: float = Field(default=900.0, gt=0)

    # Decision documents (permits/documents/service.py): signing. Production puts <tenant>.key.pem and <tenant>.cert.pem
    # (optionally <tenant>.chain.pem) into signing_dir and sets signing_self_signed=false; development creates a
    # self-signed key pair per tenant under data_dir/keys on first use.
    signing_dir: Path | None = None
    signing_key_passphrase: str | None = None
    signing_self_signed: bool = True
    # "production" refuses what is only good for development: the self-signed signing fallback (the service does not
    # start unless signing_self_signed=false; a tenant without <tenant>.key.pem/.cert.pem in signing_dir cannot sign,
    # and development keys left under data_dir/keys are never used).
    environment: Literal["development", "production"] = "development"

    # API tokens (breitband/identity.py): a token created without an explicit lifetime (CLI, demo, web) expires
    # after token_default_expiry_days; no token can be created for longer than token_max_expiry_days (CLI and
    # POST /api/v1/me/tokens). A user may hold at most token_max_active_per_user unrevoked, unexpired tokens.
    token_default_expiry_days: int = Field(default=90, gt=0, le=36500)
    token_max_expiry_days: int = Field(default=365, gt=0, le=36500)
    token_max_active_per_user: int = Field(default=50, gt=0)
    # Browser sessions (breitband/sessions.py): end after this long without a request, and this long after sign-in
    # whatever happens. The cookie is "__Host-breitband" (Secure) when public_base_url is https.
    session_idle_minutes: float = Field(default=30.0, gt=0)
    session_absolute_hours: float = Field(default=12.0, gt=0)
    # Invitation and password-reset links (accounts/links.py): single use, dead this many hours after they were sent.
    account_link_hours: float = Field(default=24.0, gt=0)

    # Request size and rate limits (breitband/limits.py; docs/limits.md). Body limits in MiB per endpoint, enforced
    # while the body streams in: 413 problem+json as soon as one is passed, at once for a larger Content-Length.
    # Route-taking endpoints (/resolve, drafts, supplements, as-built) get 16 MiB: a route at the 100,000-vertex
    # limit is 3.7 MiB as compact GeoJSON with full double precision, 8.2 MiB indented by 2, 12.4 MiB by 4.
    # Uploads: max_attachment_mb plus the multipart overhead. /verify: decision PDFs are about 50 kB, and checking a
    # file costs up to 0.6 s of CPU per MB (a PDF header followed by zeros), so 1 MiB and 10 a minute per address.
    body_limit_mb: float = Field(default=2.0, gt=0)
    body_limit_route_mb: float = Field(default=16.0, gt=0)
    body_limit_verify_mb: float = Field(default=1.0, gt=0)
    body_limit_multipart_overhead_mb: float = Field(default=1.0, ge=0)
    # Rate limits as "COUNT/SECONDS" (fixed window from the first hit) or "off"; over one → 429 with Retry-After.
    # Counters in Redis, shared by all API processes; Redis unreachable → limits not enforced (fail open, warning
    # logged, Redis asked again after limits_redis_retry_s).
    limits_redis_url: str = "redis://127.0.0.1:6379/2"
    limits_redis_timeout_s: float = Field(default=0.2, gt=0)
    limits_redis_retry_s: float = Field(default=5.0, ge=0)
    rate_limit_auth_failures: str = "20/60"     # failed authentications per client address
    rate_limit_verify: str = "10/60"            # POST /verify per client address
    rate_limit_resolve_token: str = "120/60"    # POST /api/v1/resolve per token
    rate_limit_resolve_client: str = "600/60"   # POST /api/v1/resolve per client address (offices share one)
    rate_limit_redeliver_token: str = "20/60"   # webhook redeliveries per token
    rate_limit_password_reset: str = "10/600"   # POST /api/v1/auth/password-reset per client address (e-mails)
    # The work of /resolve per token: features resolved per window (10,000 points cost about 2 s of CPU, so the
    # default lets one token use at most about a tenth of a core), counted before the resolution's queries.
    rate_limit_resolve_features_token: str = "30000/60"
    # Reverse proxies whose X-Forwarded-For is believed for the client address (off: the connection's peer).
    # JSON list in the environment, e.g. BREITBAND_TRUSTED_PROXIES='["10.0.0.0/8"]'.
    trusted_proxies: list[str] = Field(default_factory=list)
    # GET /metrics (breitband/metrics.py): Prometheus text format for a scraper that sends
    # "Authorization: Bearer <metrics_token>"; without a token set, /metrics answers 404 (off).
    metrics_token: str | None = Field(default=None, min_length=16)

    @field_validator("rate_limit_auth_failures", "rate_limit_verify", "rate_limit_resolve_token",
                     "rate_limit_resolve_client", "rate_limit_redeliver_token",
                     "rate_limit_resolve_features_token", "rate_limit_password_reset")
    @classmethod
    def _rate(cls, value: str) -> str:
        if value.strip().lower() != "off" and not re.fullmatch(r"\s*[1-9]\d*\s*/\s*[1-9]\d*\s*s?\s*", value):
            raise ValueError(f"{value!r} is not a rate such as '20/60' (20 per 60 seconds) or 'off'")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"{net!r} is not a network such as 10.0.0.0/8 or 192.0.2.7/32") from None
        return value

    @field_validator("webhook_blocked_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"{net!r} is not a network such as 169.254.0.0/16 or fe80::/10") from None
        return value

    @model_validator(mode="after")
    def _production_signing(self) -> "Settings":
        if self.environment == "production" and self.signing_self_signed:
            raise ValueError("BREITBAND_ENVIRONMENT=production refuses self-signed signing keys: set "
                             "BREITBAND_SIGNING_SELF_SIGNED=false and put <tenant>.key.pem and <tenant>.cert.pem, "
                             "issued for the state's authority, into BREITBAND_SIGNING_DIR")
        return self

    @model_validator(mode="after")
    def _token_expiry(self) -> "Settings":
        if self.token_default_expiry_days > self.token_max_expiry_days:
            raise ValueError(f"token_default_expiry_days ({self.token_default_expiry_days}) must not exceed "
                             f"token_max_expiry_days ({self.token_max_expiry_days})")
        return self

    @property
    def readonly_url(self) -> str:
        return self.database_readonly_url or self.database_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
