"""Aggregator adapters: a casino aggregator's seamless-wallet API mapped onto the wallet's calls.

Each adapter is the aggregator's request format, signature and status codes (`hub88`), and a thin
HTTP front (`hub88_app`) that an operator mounts in front of the wallet engine. The wallet core
(`wallet.rules`, `wallet.engine`) knows nothing of them.
"""
