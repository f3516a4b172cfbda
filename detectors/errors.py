"""Errors raised by detectors; every message names the parameter or input and its value."""


class DetectorError(ValueError):
    """Root of every detector error."""


class DetectorParameterError(DetectorError):
    """A detector was configured with an invalid parameter."""


class DetectorInputError(DetectorError):
    """A detector was given an observation it cannot score (NaN, infinite, empty)."""


class DetectorStateError(DetectorInputError):
    """A state document (``set_state``) holding what no detector of its kind writes: a
    value that is not finite, a count or position out of its range. Corrupt, not merely
    another detector's or another version's document (those raise ``DetectorInputError``
    or ``KeyError``): the stream says it when it starts that sensor's detector over."""
