"""One module per messaging channel; channel-neutral types in ``base``."""
