"""hagate.lab"""
