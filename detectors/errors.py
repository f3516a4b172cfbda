"""Errors raised by detectors; every message names the parameter or input and its value."""


class DetectorError(ValueError):
    """Root of every detector error."""


class DetectorParameterError(DetectorError):
    """A detector was configured with an invalid parameter."""


class DetectorInputError(DetectorError):
    """A detector was given an observation it cannot score (NaN, infinite, empty)."""
