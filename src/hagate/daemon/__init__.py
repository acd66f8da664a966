"""hagate.daemon"""
