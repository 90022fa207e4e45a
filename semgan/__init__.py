"""semgan: SEM image ↔ design layout translation with a conditional GAN."""

__version__ = "0.1.0"

# Pixel size (nm/px) of the shipped default model and of generated demo data.
DEFAULT_NM_PER_PX = 4.0
