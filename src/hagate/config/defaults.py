"""keepalived 2.2.7's defaults and ranges (keepalived.conf(5), checked with `keepalived -t`)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

# vrrp_instance
PRIORITY = 100  # keepalived.conf(5): "priority 100"
PRIORITY_OWNER = 255  # address owner (RFC 3768 §5.3.4, RFC 9568 §5.2.4)
PRIORITY_RANGE = (1, 255)
VRID_RANGE = (1, 255)  # RFC 3768 §5.3.3
ADVERT_INT = 1.0  # seconds (RFC 3768 §5.3.7 default)
ADVERT_INT_RANGE = (0.01, 255.0)  # keepalived's parser bounds
ADVERT_INT_V3_MAX = 40.95  # 12-bit centiseconds (RFC 9568 §5.2.7)
VERSION = 2  # global vrrp_version default
PREEMPT_DELAY_RANGE = (0.0, 1000.0)
DOWN_TIMER_ADVERTS = 3  # Master_Down_Interval = 3 * advert_int + skew_time (RFC 3768 §6.1)
DOWN_TIMER_ADVERTS_RANGE = (1, 100)
VRRP_MAX_ADDR = 255  # the 8-bit Count IPvX Addr field
DEFAULT_MTU = 1500  # keepalived's DEFAULT_MTU; check assumes Ethernet
AUTH_PASS_LEN = 8  # RFC 2338 §5.3.10: 8 octets of authentication data
TTL_RANGE = (0, 255)

# gratuitous ARP / unsolicited NA (global vrrp_garp_* and per instance garp_*)
GARP_MASTER_DELAY = 5.0
GARP_MASTER_REPEAT = 5
GARP_MASTER_REFRESH = 0.0  # 0: no refresh
GARP_MASTER_REFRESH_REPEAT = 1
GARP_INTERVAL = 0.0
GNA_INTERVAL = 0.0

# vrrp_script
SCRIPT_INTERVAL = 1.0
SCRIPT_WEIGHT = 0
SCRIPT_RISE = 1
SCRIPT_FALL = 1
WEIGHT_RANGE = (-253, 253)

# global_defs
SMTP_CONNECT_TIMEOUT = 30
SCRIPT_USER = "keepalived_script"  # used when it exists, otherwise root
MCAST_GROUP4 = IPv4Address("224.0.0.18")  # RFC 3768 §5.2.2
MCAST_GROUP6 = IPv6Address("ff02::12")  # RFC 9568 §5.1.2.2
