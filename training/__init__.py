"""psi0 training package."""
