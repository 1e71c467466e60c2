"""The event loop the server runs on: uvloop when installed, asyncio's own otherwise.

uvloop runs the transport and scheduling machinery in C; a warm cached frame is a few hundred
microseconds of which most is that machinery, so it roughly decides the shared-render rate.
The stdlib loop remains a working fallback (tests run on it)."""

import asyncio


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
