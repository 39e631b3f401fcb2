"""Training and evaluation; imports the model code, never the reverse."""
