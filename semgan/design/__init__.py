"""Design overlay: attach a sample's design clip, register it to the SEM, measure EPE/CD against it, export."""
