"""shopwatch: real-time threat monitoring and anomaly detection for online shops."""

__version__ = "0.1.0"
