"""psi0 shards package."""
