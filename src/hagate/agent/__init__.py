"""hagate.agent"""
