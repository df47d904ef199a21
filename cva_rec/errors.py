"""One exception family, so the CLI can print a one-line error instead of a traceback."""


class CvaRecError(Exception):
    """Base class for every error cva_rec raises on purpose (bad input, bad config)."""


class ConfigError(CvaRecError):
    """A config key, value or name (model, loss, encoder) that cva_rec does not know."""


class DataError(CvaRecError):
    """A dataset that is missing, malformed or too small."""


class FeatureStoreError(CvaRecError):
    """A feature store that is missing, corrupt or does not match the dataset."""


class CheckpointError(CvaRecError):
    """A checkpoint that cannot be read or does not fit the model."""
