"""hagate.gateway"""
