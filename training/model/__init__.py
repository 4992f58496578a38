"""psi0 model components: VLM wrapper (system-2) and flow-matching action expert (system-1)."""
