"""psi0 teleop package."""
