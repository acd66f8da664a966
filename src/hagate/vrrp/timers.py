"""Skew_Time and Master_Down_Interval, computed as keepalived does (integer microseconds).

RFC 9568 §6.1: Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256 and
Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time (centisecond intervals).
RFC 3768 §6.1 (VRRPv2): Skew_Time = (256 - Priority) / 256 seconds.
keepalived (vrrp.h VRRP_TIMER_SKEW, VRRP_MS_DOWN_TIMER) uses down_timer_adverts instead of 3
and truncates to whole microseconds; so do we, so timings match keepalived exactly.
"""

from __future__ import annotations

US_PER_S = 1_000_000
US_PER_CS = 10_000


def skew_time_us(version: int, priority: int, master_adver_int_cs: int) -> int:
    """Skew_Time in microseconds for ``priority`` (keepalived: the effective priority)."""
    if version == 3:
        return ((256 - priority) * master_adver_int_cs * 625) // 16
    return (256 - priority) * US_PER_S // 256


def master_down_interval_us(
    version: int, priority: int, master_adver_int_cs: int, down_timer_adverts: int = 3
) -> int:
    """Master_Down_Interval in microseconds."""
    return down_timer_adverts * master_adver_int_cs * US_PER_CS + skew_time_us(
        version, priority, master_adver_int_cs
    )


def skew_time(version: int, priority: int, master_adver_int_cs: int) -> float:
    """Skew_Time in seconds."""
    return skew_time_us(version, priority, master_adver_int_cs) / US_PER_S


def master_down_interval(
    version: int, priority: int, master_adver_int_cs: int, down_timer_adverts: int = 3
) -> float:
    """Master_Down_Interval in seconds."""
    us = master_down_interval_us(version, priority, master_adver_int_cs, down_timer_adverts)
    return us / US_PER_S
