"""Development tooling: the embedded MongoDB and (later) the local stack. Not deployed."""
