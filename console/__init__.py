"""The staff web console: agents, counter clerks and supervisors over the card backend."""
