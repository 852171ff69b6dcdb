"""The primitive set, grouped by kind. Importing this package registers every primitive."""
from taiji._prims import elementwise, structure, reduce, linalg, random, nn, conv, pool  # noqa: F401
