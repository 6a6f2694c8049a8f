"""Models: where weights come from, and how a task head and a PEFT method wrap them."""
