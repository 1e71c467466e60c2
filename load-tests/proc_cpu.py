"""CPU time of running processes, read from ``/proc``: what a busy, shared machine distorts
least, so the benchmarks report it beside their rates."""

from __future__ import annotations

import os
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _cpu(stat: str) -> tuple[int, float]:
    """Parent pid and CPU seconds (user + system, all threads) from a ``/proc/PID/stat`` line."""
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def cpu_seconds(pid: int) -> float:
    return _cpu(Path(f"/proc/{pid}/stat").read_text())[1]


def process_table() -> dict[int, tuple[int, float, str]]:
    """Every process: parent pid, CPU seconds used so far, command line."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        table[int(entry.name)] = (*_cpu(stat), command)
    return table
