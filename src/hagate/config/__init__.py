"""hagate.config"""
