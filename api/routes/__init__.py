"""The API's resources, one module each; every endpoint names its scope with ``Caller``."""
