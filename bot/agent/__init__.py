"""The LLM repair agent (openai client, chat completions with tools) and Agent Skills loading."""
