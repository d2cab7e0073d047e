"""The one exception the PKI package raises for bad input."""


class PkiError(ValueError):
    """Input the PKI code cannot use; the message is a sentence shown to users as-is."""
