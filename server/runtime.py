"""Process-wide tuning for `noctis serve`: the cyclic garbage collector's thresholds.

The render and rooms caches hold hundreds of thousands of tracked objects once a server has
been reading for a while, and CPython's default thresholds (700, 10, 10) run a collection every
700 allocations and a full one every 100 young ones, each walking those objects. Measured with
`load-tests/bench_render.py`: warm frames at 8 clients went from about 4,300 to 5,500 per
second once the caches were full. Our objects rarely form cycles, so collecting less often
keeps memory flat while the caches stay bounded in bytes as before.
"""

import gc

GC_THRESHOLDS = (20_000, 50, 100)


def tune_garbage_collector() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
