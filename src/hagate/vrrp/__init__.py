"""hagate.vrrp"""
