"""Request and response models (separate classes; requests refuse unknown fields)."""
