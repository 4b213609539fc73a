"""Benchmarks: ravyn_channels side by side with a hand-written Channels consumer and a raw ASGI app.

Run ``python -m bench`` (or ``make bench``); see ``bench/__main__.py``.
"""
