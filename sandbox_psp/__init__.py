"""The sandbox PSP: an HTTP service that behaves like a real PSP, for development and tests.

Run it with `python -m sandbox_psp` (`SandboxSettings`: psp_host:psp_port). It serves
`sandbox-cards` and `sandbox-bank` under `/{provider}/...`: `POST charges|payouts|refunds`,
`GET operations/{key}`, `GET operations?reference=`, `GET settlement-report` (optional `since`,
`until`: the lines settled in that window), disputes (`sandbox_psp.disputes`: planted by
`POST _sandbox/disputes`, answered by `POST disputes/{id}/evidence|accept`, read by
`GET disputes/{id}` and `GET disputes?reference=`), customer authentication
(`sandbox_psp.authentication`: `POST charges/{key}/authentication|cancel`, the HTML page at
`authenticate/{charge id}`), and `GET /healthz`. Errors are
`{"error": code, "message": ...}`. It imports nothing of the service but `domain/`: its settings,
its logging and its webhook signing are its own, as a real PSP's would be.

Decisions worth knowing:
- An operation's outcome is decided when it is created and stored with `settles_at` (created +
  `psp_webhook_delay_seconds`); polling shows `pending` until then, the final status after, with
  or without a webhook. Refunds settle at once; a refund of a `pm_no_refund` charge is declined
  (`refund_declined`), a refund of a disputed charge (unless the dispute was won) refused.
- Idempotency keys are per provider, across kinds: the same key and body replays the first
  operation (200, `Idempotent-Replayed: true`); a different body is 422 `idempotency_key_reused`.
- Tokens are in `behaviours.TOKENS`; any other token is 422 `unsupported_payment_method`.
- `pm_timeout` stalls only the call that creates the operation (replays answer at once); its
  webhook is still sent, as a real PSP would.
- `pm_3ds_required`, `pm_3ds_required_declined` and `pm_bank_redirect` (not on `sandbox-cards`)
  make a charge that shows `requires_action` until its customer answers the authentication page
  (or the merchant cancels it); only then is its outcome decided and its webhook sent.
- `pm_flaky` counts its refusals per provider and key in the database, so they survive restarts.
- Webhooks wait in a SQLite outbox and are retried with exponential backoff (0.1 s doubling, capped
  at `psp_webhook_retry_max_seconds`) until answered 2xx, in order per operation or dispute;
  events carry `sequence` 1 (`*.pending`, `dispute.created`) or 2 (final, the dispute's verdict).
"""
