"""psi0 converters package."""
