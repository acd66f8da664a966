"""hagate.simulate"""
