"""The ``cva-rec`` command line: one module per subcommand, assembled by :mod:`.main` (entry point ``cva_rec.cli.main:main``)."""

__all__: list = []  # the public interface is the command line itself
