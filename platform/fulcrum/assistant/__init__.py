"""The support assistant: answer templates per intent, a knowledge base searched by
sentence embeddings, and a hand-over for the rest (docs/assistant.md)."""
