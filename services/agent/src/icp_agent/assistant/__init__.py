"""The assistant: the ADK agent tree (root + specialists), its tools and its models."""
