"""A simulated LLM provider speaking the OpenAI and Anthropic wire formats (tests and demos)."""
