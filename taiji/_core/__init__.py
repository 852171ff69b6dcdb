"""The core: primitives, interpreters, the tape and the IR."""
