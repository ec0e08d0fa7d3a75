"""placeholder"""
def register(subparsers):  # type: ignore[no-untyped-def]
    pass
