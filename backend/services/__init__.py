"""The use cases, one module each; every state change is one transaction."""
