"""The server side of the benchmarks: one ASGI application per variant, same paths and same job.

- ``ref``: hand-written Channels consumers (what users write without this library);
- ``raw``: a bare ASGI callable, no Django, no Channels (the server's own ceiling);
- ``ravyn``: ``@websocket`` handlers and ``ConnectionManager``;
- ``listloop``: ``@websocket`` with the seed's plain list manager (the fan-out reference);
- ``topics``: a ``TopicSocket`` (event + reply, topic broadcast);
- ``presence``, ``history``, ``metrics``: ``ravyn`` with presence, room history, or
  prometheus metrics on (their cost is the difference to ``ravyn``).

Paths: ``/echo`` sends every text frame back; ``/fanout/{room}`` joins ``room``
and broadcasts every text frame it receives to the whole room.
"""
