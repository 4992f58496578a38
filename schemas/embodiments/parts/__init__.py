"""Part tables (bodies, hands, the human hand) that the configuration modules compose."""
