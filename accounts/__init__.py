"""Accounts: how people sign in and who administers them — local accounts (passwords, second factor, lockout),
invitation and reset links, OpenID Connect per tenant, browser sessions' endpoints, user and organisation
administration, and the security events that record all of it. Sits beside permits: uses the shell (identity,
sessions, auth), geo (the tenant's rules) and notifications (e-mail, the outbox for webhooks)."""
