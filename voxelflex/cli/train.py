"""`voxelflex train` (placeholder until implemented)."""


def train() -> None:
    """Not implemented yet."""
