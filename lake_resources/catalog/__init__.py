"""What the lake holds: datasets (each declared once), their schemas, the instrument catalogue, the
trading calendar, and validation of every name a user can pass (symbols, dates, datasets)."""
