"""spendgate: an LLM cost-attribution gateway."""

__version__ = "0.1.0"
