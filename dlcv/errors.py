"""Every error the command line turns into a message and an exit status (standard library only,
so that the graded path, the engine and the CLI can all import them without importing each other).

`dlcv` exits 2 for the first five (bad input or a busy run folder: the message names the file and
the problem) and 3 for a non-finite loss.
"""


class DataError(ValueError):
    """Bad input data; the message names the file and the problem."""


class ConfigError(ValueError):
    """A config file or override that does not fit the schema."""


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unsafe to load, or of the wrong kind."""


class WeightsError(RuntimeError):
    """Pretrained weights that are missing or do not fit the model."""


class RunLockedError(RuntimeError):
    """Another live process is training in this run folder (dlcv.runlock)."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/inf loss; the last good checkpoint is kept untouched."""


EXIT_BAD_INPUT = 2
EXIT_NON_FINITE = 3
BAD_INPUT_ERRORS = (DataError, ConfigError, CheckpointError, WeightsError, RunLockedError)
