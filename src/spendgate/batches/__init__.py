"""Provider batch jobs (OpenAI /v1/batches, Anthropic /v1/messages/batches): their results as
ledger events at the batch price, attributed to the batch's creator (pure)."""

from spendgate.batches.results import (
    BatchResult,
    JSONLines,
    anthropic_result,
    batch_event_id,
    openai_result,
    result_event,
)

__all__ = ["BatchResult", "JSONLines", "anthropic_result", "batch_event_id", "openai_result", "result_event"]
