"""risk stage."""
