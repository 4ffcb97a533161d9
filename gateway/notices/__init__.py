"""Notices that reach a network's admins: signed webhook deliveries (docs/WEBHOOKS.md).

kinds.py     the event kinds and what each write announces
outbox.py    `noticed(request, ...)`: a handler's notices commit with its change
signing.py   the signature headers a receiver checks
targets.py   which URLs may be subscribed and which addresses may be called
delivery.py  the worker: claim due rows, send, retry with backoff, mark
scan.py      the periodic scan for time-based notices, and pruning
service.py   start and stop of the worker and the scan with the application
"""
