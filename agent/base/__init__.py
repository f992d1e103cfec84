"""The base layer: event model, options and config, component contract, registry.

Everything may import it; it imports nothing else of agentd."""
