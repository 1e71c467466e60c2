"""Realtime reading rooms: study rooms on Socket.IO, with a sequenced, persisted op log.

- ``setup.py``: ``setup_rooms(app)``, ``INDEXES``, and the app keys other capabilities plug into
  (``STUDY_DIRECTORY``, ``ROOM_RENDERER``, ``ROOM_MEASURER``; ``draft_source`` for the workflow).
- ``handlers.py``: one thin handler per catalog event (``shared/protocol/events/rooms.json``,
  ``presence.json``, ``annotations.json``, ``chat.json``, ``report.json``, ``alerts.json``).
- ``service.py``: the core every handler calls; over a ``Channel`` (``channel.py``), so it runs
  in tests with ``MemoryChannel`` and in the server with ``socket_channel.SocketChannel``.
- ``oplog.py`` (sequence + op log), ``access.py`` (facility, invitations), ``presence.py``
  (volatile, batched per tick), ``annotations.py``, ``chat.py``, ``report.py`` (Yjs drafts),
  ``alerts.py`` (hub projection and actions), ``frames.py`` (latest-wins, shared, acknowledged),
  ``measure.py`` (the measurement seam).
"""
