"""SIPp scenarios (XML) for the test caller and the test agent phone."""
