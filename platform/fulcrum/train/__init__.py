"""Train stage: a Ray Train run of DeepSpeed engines over a PEFT model, ending in an artifact."""
