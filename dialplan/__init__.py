"""Asterisk side of the service: configuration templates, a local Asterisk 22 and SIPp calls."""
