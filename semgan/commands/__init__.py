"""Sub-commands of ``python -m semgan``; each module has ``add_arguments`` and ``run``."""
