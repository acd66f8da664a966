"""Configuration of one VRRP instance, as the state machine needs it (frozen, validated).

Names follow keepalived's vrrp_instance keywords. Where keepalived and the RFCs differ,
keepalived's behaviour is the default and ``strict_rfc=True`` selects the RFC's.

keepalived's completion rules (vrrp_complete_instance: IPv6 forces VRRPv3, VRRPv3 has no
authentication, nopreempt and preempt_delay cleared for the address owner or ``state
MASTER``) have one home, the config model (:mod:`hagate.config.instance`), which reports
each as a finding; these parameters take the completed values as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from hagate.vrrp.advert import AuthType, IPAddress
from hagate.vrrp.state import State
from hagate.vrrp.tracking import PRIORITY_OWNER, TrackedItem


class ParamsError(ValueError):
    """An instance parameter is out of range or inconsistent."""


@dataclass(frozen=True, slots=True)
class VrrpParams:
    """One instance. ``advert_int`` is in seconds (v2: whole 1..255, v3: 0.01..40.95)."""

    vrid: int
    primary_address: IPAddress
    vips: tuple[IPAddress, ...]
    version: int = 2  # keepalived's default vrrp_version
    priority: int = 100  # keepalived VRRP_PRIO_DFL
    advert_int: float = 1.0
    start_state: State | None = None  # keepalived `state`; None: MASTER iff priority 255
    nopreempt: bool = False
    preempt_delay: float = 0.0  # seconds, keepalived 0..1000
    tracked: tuple[TrackedItem, ...] = ()
    garp_master_delay: float = 5.0  # keepalived vrrp_garp_master_delay default
    garp_master_repeat: int = 5  # keepalived vrrp_garp_master_repeat default
    garp_master_refresh: float = 0.0  # 0: no periodic refresh
    garp_master_refresh_repeat: int = 1
    garp_lower_prio_delay: float | None = None  # None: garp_master_delay
    garp_lower_prio_repeat: int | None = None  # None: garp_master_repeat
    lower_prio_no_advert: bool = False
    higher_prio_send_advert: bool = False
    down_timer_adverts: int = 3
    startup_delay: float = 0.0  # keepalived vrrp_startup_delay: no MASTER before it passes
    auth_type: AuthType = AuthType.NONE
    auth_data: bytes = b""
    strict_rfc: bool = False
    name: str = field(default="", compare=False)  # keepalived instance name, for messages

    def __post_init__(self) -> None:
        label = f"vrrp_instance {self.name}: " if self.name else ""

        def bad(msg: str) -> ParamsError:
            return ParamsError(label + msg)

        if self.version not in (2, 3):
            raise bad(f"version must be 2 or 3, not {self.version!r}")
        if not 1 <= self.vrid <= 255:
            raise bad(f"virtual_router_id {self.vrid} outside 1..255")
        if not 1 <= self.priority <= 255:
            raise bad(f"priority {self.priority} outside 1..255")
        if self.version == 2:
            if self.advert_int != int(self.advert_int) or not 1 <= self.advert_int <= 255:
                raise bad(f"advert_int {self.advert_int} s: VRRPv2 needs whole seconds 1..255")
        else:
            cs = round(self.advert_int * 100)
            if abs(cs - self.advert_int * 100) > 1e-6 or not 1 <= cs <= 4095:
                raise bad(
                    f"advert_int {self.advert_int} s: VRRPv3 needs 0.01..40.95 in 0.01 s steps"
                )
        if self.version == 2 and not isinstance(self.primary_address, IPv4Address):
            raise bad("VRRPv2 is IPv4 only")
        if self.version == 3 and (self.auth_type is not AuthType.NONE or self.auth_data):
            raise bad("VRRPv3 has no authentication (RFC 9568)")
        for vip in self.vips:
            if vip.version != self.primary_address.version:
                raise bad(f"virtual address {vip} is not the same family as {self.primary_address}")
        if not 0 <= self.preempt_delay <= 1000:
            raise bad(f"preempt_delay {self.preempt_delay} outside 0..1000 s")
        # keepalived clears these (vrrp_complete_instance); the clearing has one home, the
        # config model's completion: a hand-made combination is refused, not cleared again.
        if self.nopreempt and (self.is_owner or self.start_state is State.MASTER):
            raise bad(
                "nopreempt with priority 255 or state MASTER (keepalived clears it: "
                "hagate.config.instance)"
            )
        if self.nopreempt and self.preempt_delay:
            raise bad("preempt_delay with nopreempt (keepalived clears it: hagate.config.instance)")
        if self.startup_delay < 0:
            raise bad(f"vrrp_startup_delay {self.startup_delay} is negative")
        if not 1 <= self.down_timer_adverts <= 100:
            raise bad(f"down_timer_adverts {self.down_timer_adverts} outside 1..100")
        for value, what in (
            (self.garp_master_delay, "garp_master_delay"),
            (self.garp_master_refresh, "garp_master_refresh"),
            (self.garp_lower_prio_delay or 0.0, "garp_lower_prio_delay"),
        ):
            if value < 0:
                raise bad(f"{what} {value} is negative")
        for count, what in (
            (self.garp_master_repeat, "garp_master_repeat"),
            (self.garp_master_refresh_repeat, "garp_master_refresh_repeat"),
            (self.garp_lower_prio_repeat or 0, "garp_lower_prio_repeat"),
        ):
            if count < 0:
                raise bad(f"{what} {count} is negative")
        if self.start_state not in (None, State.BACKUP, State.MASTER):
            raise bad(f"state must be MASTER or BACKUP, not {self.start_state}")
        if len({t.name for t in self.tracked}) != len(self.tracked):
            raise bad("tracked item names must be unique")

    # Values in force, after keepalived's vrrp_complete_instance() rules and strict_rfc.

    @property
    def advert_int_cs(self) -> int:
        return round(self.advert_int * 100)

    @property
    def is_owner(self) -> bool:
        return self.priority == PRIORITY_OWNER

    @property
    def wants_master(self) -> bool:
        """keepalived wantstate MASTER at start (strict: only the address owner)."""
        if self.strict_rfc or self.start_state is None:
            return self.is_owner
        return self.start_state is State.MASTER

    @property
    def preempt(self) -> bool:
        """RFC 9568 Preempt_Mode (the config model already cleared a void nopreempt)."""
        return not self.nopreempt

    @property
    def effective_preempt_delay(self) -> float:
        """preempt_delay is void in strict mode (the RFCs have none)."""
        if self.strict_rfc:
            return 0.0
        return self.preempt_delay

    @property
    def effective_down_timer_adverts(self) -> int:
        return 3 if self.strict_rfc else self.down_timer_adverts

    @property
    def effective_lower_prio_no_advert(self) -> bool:
        """RFC 9568 §6.4.3: a master discards lower-priority adverts (no answer)."""
        return self.strict_rfc or self.lower_prio_no_advert

    @property
    def effective_higher_prio_send_advert(self) -> bool:
        return self.higher_prio_send_advert and not self.strict_rfc

    @property
    def effective_garp_lower_prio_repeat(self) -> int:
        if self.strict_rfc:
            return 0
        if self.garp_lower_prio_repeat is None:
            return self.garp_master_repeat
        return self.garp_lower_prio_repeat

    @property
    def effective_garp_lower_prio_delay(self) -> float:
        if self.strict_rfc:
            return 0.0
        if self.garp_lower_prio_delay is None:
            return self.garp_master_delay
        return self.garp_lower_prio_delay

    def warnings(self) -> list[str]:
        """keepalived-style notes about settings that have no effect."""
        out: list[str] = []
        if self.preempt_delay and not self.effective_preempt_delay:
            out.append("preempt_delay has no effect in strict mode")
        if self.strict_rfc and self.start_state is State.MASTER and not self.is_owner:
            out.append("strict mode: state MASTER needs priority 255; starting as BACKUP")
        return out
