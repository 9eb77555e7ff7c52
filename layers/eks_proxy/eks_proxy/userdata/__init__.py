"""userdata."""
