"""The commands of ``vividzoo``, one module each: ``register(subparsers)`` adds its options (checked while
parsing, see :mod:`.options`) and a ``handler`` that calls library code and prints what it did."""
