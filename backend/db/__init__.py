"""Tables and the engine."""
