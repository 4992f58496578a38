"""psi0: data, training and deployment pipeline for a Psi0-style humanoid foundation model."""
__version__ = "0.1.0"
