"""The error tree. Each class also inherits the built-in exception users already catch."""

from __future__ import annotations


class MleError(Exception):
    """Base of every error raised by mle_runtime."""


class FormatError(MleError, ValueError):
    """An .mle file breaks a rule of the container format; the message names the rule and where."""


class SignatureError(FormatError):
    """A signature is missing, malformed, or does not verify."""


class DecryptionError(MleError, ValueError):
    """An encrypted file cannot be decrypted: no key, a wrong key, or ciphertext changed."""


class UnsupportedModelError(MleError, TypeError):
    """A model (or a step of it) has no converter."""


class UnsupportedOpError(MleError, ValueError):
    """A graph names an op (or op version) this runtime does not implement."""


class InputError(MleError, ValueError):
    """Inputs passed to run() do not match what the model expects."""


class DeviceError(MleError, RuntimeError):
    """The requested device is not available."""
