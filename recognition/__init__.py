"""keyface: recognition."""
