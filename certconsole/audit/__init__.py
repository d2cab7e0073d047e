"""The append-only, hash-chained audit log: `record()` is how everything is audited."""


def record(actor, action, target=None, **kwargs):
    """Append an audit event (see certconsole.audit.log.record)."""
    from certconsole.audit.log import record as _record

    return _record(actor, action, target, **kwargs)
