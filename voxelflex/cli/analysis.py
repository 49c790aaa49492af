"""`voxelflex predict|evaluate|plot` (placeholder until implemented)."""


def predict() -> None:
    """Not implemented yet."""


def evaluate() -> None:
    """Not implemented yet."""


def plot() -> None:
    """Not implemented yet."""
