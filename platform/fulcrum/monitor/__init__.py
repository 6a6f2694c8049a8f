"""`fulcrum monitor`: dated texts scored by a sentiment model, counted per entity and time
window, with alerts when an entity's negative share or volume leaves its own recent history
(docs/monitor.md)."""
