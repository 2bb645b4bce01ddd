"""Schema versions for each SQL dialect, as numbered files applied in order at open."""
