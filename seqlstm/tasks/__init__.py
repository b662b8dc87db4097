"""The built-in tasks, one module each: its data function, evaluation hooks and scoring."""
