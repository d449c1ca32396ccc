"""How much memory is free, for the guards that refuse a build that cannot fit.

:func:`available` is the one place that reads it (tests replace it). ``S2SCAT_AVAILABLE_GB``
in the environment overrides both figures (a batch job's share of a shared machine, say).
"""

from __future__ import annotations

import os
from pathlib import Path


def _host_bytes() -> int | None:
    """``MemAvailable`` (``/proc/meminfo``; else the free pages), bounded by a cgroup v2
    limit (a container's) where one is set."""
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    try:
        cgroup = Path("/sys/fs/cgroup")
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            used = int((cgroup / "memory.current").read_text().strip())
            free = min(free, max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    return free


def _device_bytes() -> int | None:
    """Free memory of JAX's first device when it is an accelerator that reports it, else
    ``None`` (on the CPU the host figure applies)."""
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        return None
    try:
        stats = device.memory_stats() or {}
    except Exception:  # noqa: BLE001  (not every backend implements it)
        return None
    if "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


def available() -> dict:
    """``{"host": bytes or None, "device": bytes or None}``: free memory now (``None``: not
    known, or no accelerator)."""
    override = os.environ.get("S2SCAT_AVAILABLE_GB")
    if override:
        try:
            value = int(float(override) * 1e9)
        except ValueError:
            raise ValueError(f"S2SCAT_AVAILABLE_GB must be a number of GB, got "
                             f"{override!r}") from None
        return {"host": value, "device": value}
    return {"host": _host_bytes(), "device": _device_bytes()}
