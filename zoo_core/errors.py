"""Exceptions that the command line turns into one-line error messages."""


class ZooError(Exception):
    """An error the user can fix: the message names the value and what to do."""


class DataError(ZooError):
    """A dataset file is missing, corrupt or not in the expected format."""


class ConfigError(ZooError):
    """An option, setting, config file or registry entry is invalid."""


class ModelNotFoundError(ZooError):
    """A model name matches no model of any installed plugin."""


class PluginError(ZooError):
    """A plugin failed to load, declares an incompatible contract or broke it."""


class RunNotFoundError(ZooError):
    """A run id or folder names no kept run."""


def saved_model_error(path: object, error: BaseException) -> DataError:
    """Return the DataError for a saved model file at ``path`` that ``error`` kept from loading."""
    return DataError(
        f"cannot load the saved model {path} ({type(error).__name__}: {error}); the file is missing, damaged, "
        f"or was written for another model or version: train the model again with 'zoo run'"
    )
