"""SIPp scenario (XML) of the test caller."""
