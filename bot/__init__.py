"""AIPC bot: PyTorch → validated QNN/SNPE inference in verifiable stages, shown as a pull request."""

__version__ = "0.1.0"
