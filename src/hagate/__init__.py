"""hagate: an active-standby HA cluster for an IoT remote-access gateway."""

__version__ = "0.1.0"
