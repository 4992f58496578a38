"""psi0 deploy package."""
