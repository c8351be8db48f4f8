"""What content editors work with that the action server records or owns: the inbox of misunderstood
messages and the history of catalog edits made in the console."""
