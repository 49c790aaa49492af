"""`voxelflex demo` (placeholder until implemented)."""


def demo() -> None:
    """Not implemented yet."""
