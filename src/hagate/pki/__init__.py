"""hagate.pki"""
