"""Storage: kept units of work (units), the SQLite run store (store) and the commands over it (history)."""
