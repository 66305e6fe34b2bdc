"""Jobs that the warm launcher's tests load in a code server (module-level, importable)."""
