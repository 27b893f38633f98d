"""Reliability and security scenarios: faults survived, bad input refused, nothing lost, nobody let in."""
