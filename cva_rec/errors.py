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


class DivergedError(CvaRecError):
    """Training or evaluation produced NaN or infinite numbers (a diverged model): no metrics are written."""


class FileSystemError(CvaRecError, OSError):
    """Disk full, read-only folder, missing permission: names the path and what was needed.

    Also an ``OSError`` (with its ``errno``), so code that handles OS errors keeps doing so.
    """

    def __init__(self, message: str, errno: int | None = None, filename: str | None = None):
        super().__init__(message)
        self.errno, self.filename = errno, filename

    def __str__(self) -> str:
        return self.args[0]


class RunFolderError(CvaRecError):
    """A run folder that another process is writing, or that holds another config or a run that would be lost."""


class Stopped(BaseException):
    """The process was asked to stop (SIGTERM, SIGINT) and did: ``signum``, where it was and what is saved.

    A ``BaseException`` like ``KeyboardInterrupt``, so no ``except Exception`` on the way takes it for an error
    to handle; the CLI prints one line (with the command that resumes) and exits 128 + ``signum``.
    """

    def __init__(self, signum: int, where: str = "", saved: str = ""):
        super().__init__(signum, where, saved)
        self.signum, self.where, self.saved = int(signum), where, saved
