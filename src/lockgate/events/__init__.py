"""Events in the shapes AWS delivers them, parsed into one small record type."""
