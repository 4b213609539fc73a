"""Autobahn|Testsuite against an ``@websocket`` echo route and a plain Channels consumer.

``python -m tests.reliability.autobahn`` runs the whole suite; see ``run.py``.
"""
