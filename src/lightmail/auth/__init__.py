"""Logging in, the same for every protocol: SASL decoding (:mod:`.sasl`), the
per-connection login rules (:mod:`.policy`), password hashes (:mod:`.passwords`),
the failed-login throttle (:mod:`.throttle`) and the credential cache
(:mod:`.credentials`)."""
