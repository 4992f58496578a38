"""psi0 dashboard package."""
