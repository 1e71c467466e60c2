"""Server-side rendering: a pure pixel pipeline and the render service built on it.

The pipeline modules (decode, LUTs, viewport, tiles, MPR, measurements, encoding) take arrays
and parameters and return arrays or bytes; only `service` knows about threads and caches, so
the pixel maths can be tested without a server and reused by any transport.
"""
