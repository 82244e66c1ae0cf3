"""The logic behind the operator commands (maintenance, queues, unpark, dead-letter, config).

Usable without the CLI: every function takes a `StageContext` and returns records; nothing here
prints, prompts or imports typer/rich.
"""
