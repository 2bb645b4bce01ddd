"""The domain: models, the state machine and schedule arithmetic. No I/O happens here."""
