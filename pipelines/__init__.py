"""psi0 pipelines package."""
