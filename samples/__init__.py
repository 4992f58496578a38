"""Sample writers: each source in its real on-disk format (`psi0 sample`), and bad inputs of every kind (faults)."""
